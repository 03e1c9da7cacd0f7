"""Exporters: read the aggregates' families and translate them. Never mutate them."""
