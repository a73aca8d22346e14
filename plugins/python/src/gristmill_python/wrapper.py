# pyright: reportMissingImports=false
# The job wrapper of Gristmill's Python runtime, run in the job directory as
#   python -I -S -B -u -X utf8 wrapper.py [--deps DIR] [CONVERSIONS_JSON]
# It reads args.json, calls main.main(**args) and writes result.json: the result, or
# {"error": {"name", "message", "stack"}} with exit code 1 when main raises.
# In warm mode Gristmill's warm parent imports it instead and calls warm_run in each job's
# forked child (see gristmill/warm/forkserver.py).
# It imports as little as it can: every module here is paid for by every job.
import sys

FUNCTION_CALL_DEFAULT = "<function call>"


def _convert(value, kind):
    if kind == "bytes":
        import binascii

        return binascii.a2b_base64(value)
    import datetime

    if kind == "datetime":
        # Python before 3.11 does not read a trailing Z.
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return datetime.date.fromisoformat(value)


def _prepare_args(args, spec):
    for name in [k for k, v in args.items() if v == FUNCTION_CALL_DEFAULT]:
        del args[name]
    for name, (kind, drop_null) in spec.items():
        if name not in args:
            continue
        value = args[name]
        if value is None:
            if drop_null:
                # None means "not given": the parameter's own default applies.
                del args[name]
        elif kind and isinstance(value, str):
            args[name] = _convert(value, kind)
    return args


def _to_jsonable(value):
    """json's fallback for values it cannot write."""
    if isinstance(value, bytes | bytearray | memoryview):
        import base64

        return base64.b64encode(bytes(value)).decode()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "to_dict"):
        try:
            return value.to_dict(orient="records")  # pandas DataFrame
        except TypeError:
            return value.to_dict()
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")  # pydantic
    if type(value).__name__ == "Decimal":
        return float(value)
    return str(value)


def _finite(value):
    """A copy with NaN and infinities as null: JSON has no such numbers."""
    if isinstance(value, float):
        return value if value - value == 0 else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _dump(json, value):
    try:
        text = json.dumps(value, default=_to_jsonable, allow_nan=False, separators=(",", ":"))
    except ValueError:
        text = json.dumps(value, default=_to_jsonable, separators=(",", ":"))
        text = json.dumps(_finite(json.loads(text)), separators=(",", ":"))
    if "\\u0000" in text:
        # JSON allows NUL in strings but Postgres cannot store it: U+FFFD instead, in the
        # values themselves (a text replace would also hit an escaped backslash + "u0000").
        text = json.dumps(_without_nul(json.loads(text)), separators=(",", ":"))
    return text


def _without_nul(value):
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _run():
    """A cold run: the job's directory is the working directory, its arguments in
    args.json, its result written to result.json."""
    import json
    import os

    # Absolute: the script may change directory, its result still lands here.
    job_dir = os.getcwd()
    result_path = os.path.join(job_dir, "result.json")
    argv = sys.argv[1:]
    if argv[:1] == ["--deps"]:
        # The script's installed dependencies, after the standard library (a PyPI backport
        # never shadows the real module); addsitedir also runs their .pth files, which some
        # packages need (namespace packages, pywin32). -S kept site from doing anything else.
        import site

        site.addsitedir(argv[1])
        argv = argv[2:]
    spec = json.loads(argv[0]) if argv else {}
    with open(os.path.join(job_dir, "args.json"), "rb") as f:
        args = json.load(f)

    def write(text):
        with open(result_path, "w", encoding="utf-8") as out:
            out.write(text)

    _execute(json, job_dir, args, spec, write)


def warm_run(payload, write):
    """A warm run, in a child forked for this job by Gristmill's warm parent (which already
    imported this module, json and the environment's packages): the script's code, its
    arguments and their conversions come in ``payload``; the result goes to ``write``."""
    import json
    import os

    job_dir = os.getcwd()
    with open(os.path.join(job_dir, "main.py"), "w", encoding="utf-8") as f:
        f.write(payload["code"])
    _execute(json, job_dir, payload.get("args") or {}, payload.get("spec") or {}, write)


def _execute(json, job_dir, args, spec, write):
    sys.path.insert(0, job_dir)
    import builtins

    # `exit()` and `quit()` come from the site module, which jobs start without.
    builtins.exit = builtins.quit = sys.exit
    text = "null"
    try:
        args = _prepare_args(args, spec)
        import main as script

        result = script.main(**args)
        if hasattr(result, "__await__"):
            import asyncio

            async def _await(awaitable):
                return await awaitable

            result = asyncio.run(_await(result))
        text = _dump(json, result)
    except SystemExit as exc:
        if exc.code in (None, 0):
            text = "null"  # sys.exit() or sys.exit(0): a normal end without a result
        else:
            _fail(json, write, exc, f"the script exited with status {exc.code}")
    except BaseException as exc:  # the job's error, whatever it is, is its result
        _fail(json, write, exc)
    write(text)


def _fail(json, write, exc, message=None):
    import traceback

    tb = exc.__traceback__
    # Skip this wrapper's own frames: the stack starts in the user's code.
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    stack = "".join(traceback.format_exception(type(exc), exc, tb))
    error = {"name": type(exc).__name__, "message": message or str(exc), "stack": stack}
    write(json.dumps({"error": _without_nul(error)}, default=str))
    sys.stdout.flush()
    sys.exit(1)


if __name__ == "__main__":
    _run()
