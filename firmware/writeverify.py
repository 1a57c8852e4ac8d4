"""Write-verify for the host: the procedure lives in :mod:`neurram.spec.writeverify` (one
description for the host loop, the fast model's engine and the RTL's engine); this module is the
host's name for it."""

from neurram.spec.writeverify import (FAIL_NONE, FAIL_ROUNDS, FAIL_TOP_PULSES, RESET, SET, CellAccess,  # noqa: F401
                                      WriteVerifyConfig, WriteVerifyReport, write_verify, write_verify_codes)

__all__ = ["SET", "RESET", "CellAccess", "WriteVerifyConfig", "WriteVerifyReport", "write_verify",
           "write_verify_codes", "FAIL_NONE", "FAIL_ROUNDS", "FAIL_TOP_PULSES"]
