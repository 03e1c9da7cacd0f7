"""``errors.require``: the optional-import helper behind every "pip install modelmon[...]" line."""

from __future__ import annotations

import json

import pytest

from modelmon.errors import MissingExtraError, require


def test_require_returns_the_imported_module() -> None:
    assert require("json", "cli") is json
    assert require("email.mime", "cli").__name__ == "email.mime"


def test_a_missing_submodule_names_its_top_level_package_and_the_extra() -> None:
    with pytest.raises(
        MissingExtraError, match=r"^nomodule_x is required .*modelmon\[spark\]"
    ) as info:
        require("nomodule_x.sql", "spark")
    assert (info.value.package, info.value.extra) == ("nomodule_x", "spark")
