"""The aggregates: each folds batches, renders its families, merges, saves and loads its state.

``traffic`` (requests, latency, errors, confidence, input health), ``distributions``
(exponential histograms for OTLP), ``drift`` (reference-binned counters, windows, decisions),
``outcomes`` (ground truth) with its ``outcome_store``. Nothing here knows an exporter.
"""
