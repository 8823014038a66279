"""The registry of SPM settings lists every built-in setting."""

from __future__ import annotations

from bilevel.models.spm import list_spm_settings

EXPECTED = {
    "additive_across_types",
    "colors",
    "correlated",
    "id",
    "inventory",
    "kitchen_sink",
    "maxmin_fairness",
    "proposition1",
    "proposition2",
    "proposition4",
    "revenue",
    "two_worlds",
}


def test_registry_lists_every_setting() -> None:
    assert {s.name for s in list_spm_settings()} == EXPECTED
