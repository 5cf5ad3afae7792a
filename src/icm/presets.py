"""Applying a preset (config.PRESETS): a named set of defaults under the options given
explicitly. It lives above icm.config because it asks the testbeds which consistency
modes they offer."""

from __future__ import annotations

import dataclasses

from icm.config import PRESETS, RunConfig
from icm.errors import ConfigError, IcmError


def with_preset(cfg: RunConfig, name: str, explicit: set[str]) -> RunConfig:
    """`cfg` with preset `name` applied to every field not in `explicit` (the fields given
    on the command line or by the caller keep their values)."""
    key = name.lower()
    if key not in PRESETS:
        raise ConfigError(f"--preset: unknown preset '{name}' (known: {', '.join(PRESETS)})")
    values = {k: v for k, v in PRESETS[key].items() if k not in explicit}
    testbed = values.get("testbed", cfg.testbed)
    if values.get("consistency") == "paper" and not _offers_paper_consistency(testbed):
        # The original's keys exist for its own testbeds only; the others (capitals,
        # claims files...) keep their relations, which hold by construction.
        values["consistency"] = "default"
    return dataclasses.replace(cfg, preset=key, **values)


def _offers_paper_consistency(testbed: str) -> bool:
    from icm.testbeds import get_testbed
    from icm.testbeds.loading import is_claims_file

    if is_claims_file(testbed):
        return False
    try:
        return "paper" in get_testbed(testbed).consistency_modes
    except IcmError:  # an unknown name: the load says so, with "Did you mean"
        return True
