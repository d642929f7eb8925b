"""Code run by the round-trip subprocess (``python -I -c``): standard library and cloudpickle only.

``once JOB_JSON``: load the payload, run it on the sample input if there is one, write the
result file, exit. ``serve PRELOAD_JSON_FILE``: import the listed installed modules, print
``ready``, then for every job line on stdin fork a child that does the same as ``once`` and
answer with one status line. A forked child never sees a previous payload: the server itself
never unpickles one.
"""

import builtins
import contextlib
import importlib
import importlib.util
import json
import os
import pickle
import sys
import time
import traceback


def _write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def run_job(job):
    refs = set()
    imports = set()
    stage = "load"
    started = time.perf_counter()
    try:
        import cloudpickle

        class TrackingUnpickler(pickle.Unpickler):
            def find_class(self, module, name):
                refs.add(module)
                found = super().find_class(module, name)
                if name == "subimport" and module.startswith("cloudpickle"):

                    def subimport(module_name, _subimport=found):
                        refs.add(module_name)
                        return _subimport(module_name)

                    return subimport
                return found

        importlib.invalidate_caches()
        with open(job["payload"], "rb") as f:
            func = TrackingUnpickler(f).load()
        if not callable(func):
            raise TypeError(f"the payload holds a {type(func).__name__}, which is not callable")
        loaded = time.perf_counter()
        has_output = False
        if job.get("sample"):
            stage = "sample"
            with open(job["sample"], "rb") as f:
                sample = pickle.load(f)
            original_import = builtins.__import__
            original_import_module = importlib.import_module

            def tracking_import(name, globals=None, locals=None, fromlist=(), level=0):
                if level == 0:
                    imports.add(name)
                elif globals is not None and globals.get("__package__"):
                    with contextlib.suppress(ImportError, ValueError):
                        imports.add(
                            importlib.util.resolve_name("." * level + name, globals["__package__"])
                        )
                return original_import(name, globals, locals, fromlist, level)

            def tracking_import_module(name, package=None):
                if not name.startswith("."):
                    imports.add(name)
                return original_import_module(name, package)

            builtins.__import__ = tracking_import
            importlib.import_module = tracking_import_module
            try:
                output = func(sample)
            finally:
                builtins.__import__ = original_import
                importlib.import_module = original_import_module
            stage = "output"
            with open(job["output"], "wb") as f:
                cloudpickle.dump(output, f)
            has_output = True
        result = {
            "ok": True,
            "refs": sorted(refs),
            "imports": sorted(imports),
            "has_output": has_output,
            "load_seconds": loaded - started,
            "seconds": time.perf_counter() - started,
            "python": ".".join(str(v) for v in sys.version_info[:3]),
        }
    except BaseException as exc:
        result = {
            "ok": False,
            "stage": stage,
            "error": f"{type(exc).__name__}: {exc}",
            "missing_module": getattr(exc, "name", None)
            if isinstance(exc, ModuleNotFoundError)
            else None,
            "traceback": traceback.format_exc(),
            "refs": sorted(refs),
        }
    _write_json(job["result"], result)


def serve(preload_file):
    with open(preload_file, encoding="utf-8") as f:
        preload = json.load(f)
    for name in preload:
        with contextlib.suppress(BaseException):
            importlib.import_module(name)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(log, 1)
                os.dup2(log, 2)
                run_job(job)
            except BaseException:
                code = 1
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.write(json.dumps({"status": status}) + "\n")
        out.flush()


def main(argv):
    if argv[1] == "once":
        run_job(json.loads(argv[2]))
    elif argv[1] == "serve":
        serve(argv[2])
    else:
        raise SystemExit("usage: once JOB_JSON | serve PRELOAD_FILE")


if __name__ == "__main__":
    main(sys.argv)
