"""Schemathesis hooks for tests/openapi_document.rs (loaded with SCHEMATHESIS_HOOKS).

clnrest answers 5xx in two documented cases only: 500 passing through lightningd's error
object when the method failed in lightningd, and 503 when lightningd is unreachable (which
never happens behind the mock). This check fails on any other server error.
"""

import json

import schemathesis

# The code clnrest uses for its own failures (`Internal error: ...`, `lightningd is
# unreachable: ...`); lightningd's errors passed through carry lightningd's codes.
CLNREST_INTERNAL_CODE = -32603


def _excerpt(response):
    text = response.content.decode("utf-8", "replace") if response.content else ""
    return text[:500]


@schemathesis.check
def only_lightningd_errors(ctx, response, case):
    """5xx only as the pass-through of a lightningd error (500 with its code and message)."""
    status = response.status_code
    if status < 500:
        return None
    body_text = _excerpt(response)
    if status != 500:
        raise AssertionError(
            f"{status} is not expected: only 500 carrying a lightningd error may be a "
            f"server error here. Body: {body_text}"
        )
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"500 whose body is not JSON: {body_text!r}")
    code = body.get("code") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(message, str):
        raise AssertionError(
            f"500 without a lightningd error object (integer code, string message): {body_text}"
        )
    if code == CLNREST_INTERNAL_CODE or message.startswith("Internal error"):
        raise AssertionError(f"500 raised by clnrest itself, not by lightningd: {body_text}")
    return None
