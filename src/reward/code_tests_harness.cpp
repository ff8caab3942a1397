// The Python programs the code_tests reward runs inside the sandbox around the candidate's code:
// a wrapper for stdin/stdout tests and the HumanEval-style check harness whose verdict the
// candidate cannot forge (reasoning in docs/sandbox.md, "Function-call verdicts").
#include "code_tests_harness.h"

namespace grpo::reward::detail {

// argv: box_dir. Compiles solution.py (CE is reported on fd 4, which is closed before the
// candidate runs) and executes it as __main__.
const char* const kStdinWrapper = R"PY(import os, sys
box = sys.argv[1]
with open(box + "/solution.py", "rb") as f:
    src = f.read()
try:
    code = compile(src, "solution.py", "exec")
except (SyntaxError, ValueError) as e:
    os.write(4, ("CE " + type(e).__name__ + ": " + str(e)).encode("utf-8", "replace")[:400])
    os._exit(1)
os.close(4)
os.close(3)
del src, f
sys.argv = ["solution.py"]
exec(code, {"__name__": "__main__", "__file__": "solution.py", "__builtins__": __builtins__})
)PY";

// argv: box_dir entry_point. fd 3 carries "<token>\n<check code>" (read only after the fork);
// fd 4 receives "<token> <VERDICT> <detail>". The candidate runs in a forked child that closes
// both fds before its first instruction; check() runs in this process and reaches the
// candidate's functions through pipes carrying plain JSON data.
const char* const kFunctionHarness =
    R"PY(import builtins, importlib, json, os, signal, sys, types
TOKEN_FD, RESULT_FD, MAX_MSG = 3, 4, 1 << 28
if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(0)


def encode(v, depth=0):
    if depth > 500:
        raise ValueError("value nested too deeply")
    if v is None or isinstance(v, bool):
        return bool(v) if v is not None else None
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return str(v)
    if isinstance(v, list):
        return [encode(x, depth + 1) for x in v]
    if isinstance(v, tuple):
        return {"t": [encode(x, depth + 1) for x in v]}
    if isinstance(v, dict):
        return {"d": [[encode(k, depth + 1), encode(x, depth + 1)] for k, x in v.items()]}
    if isinstance(v, frozenset):
        return {"f": [encode(x, depth + 1) for x in v]}
    if isinstance(v, set):
        return {"s": [encode(x, depth + 1) for x in v]}
    if isinstance(v, (bytes, bytearray)):
        return {"b": bytes(v).hex()}
    if isinstance(v, complex):
        return {"c": [v.real, v.imag]}
    if callable(getattr(type(v), "tolist", None)):  # numpy scalars and arrays
        return encode(v.tolist(), depth + 1)
    raise TypeError("a %s cannot travel between check() and the solution" % type(v).__name__)


def decode(v):
    if isinstance(v, list):
        return [decode(x) for x in v]
    if isinstance(v, dict):
        (tag, x), = v.items()
        if tag == "t":
            return tuple(decode(i) for i in x)
        if tag == "d":
            return {decode(k): decode(y) for k, y in x}
        if tag == "s":
            return set(decode(i) for i in x)
        if tag == "f":
            return frozenset(decode(i) for i in x)
        if tag == "b":
            return bytes.fromhex(x)
        if tag == "c":
            return complex(x[0], x[1])
        raise ValueError("bad tag")
    return v


def send(fd, obj):
    data = json.dumps(obj).encode()
    data = len(data).to_bytes(8, "big") + data
    while data:
        data = data[os.write(fd, data):]


def read_exact(fd, n):
    parts = []
    while n > 0:
        b = os.read(fd, min(n, 1 << 20))
        if not b:
            raise EOFError
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


def recv(fd):
    n = int.from_bytes(read_exact(fd, 8), "big")
    if n > MAX_MSG:
        raise ValueError("message too large")
    return json.loads(read_exact(fd, n))


def describe(e):
    return (type(e).__name__ + ": " + str(e)).replace("\n", " ")[:300]


def serve(code, req, resp):
    ns = {"__name__": "__solution__", "__builtins__": builtins}
    try:
        exec(code, ns)
        send(resp, {"load": None})
    except BaseException as e:
        send(resp, {"load": describe(e), "exc": type(e).__name__})
        os._exit(1)
    while True:
        try:
            msg = recv(req)
        except EOFError:
            os._exit(0)
        name = msg["name"]
        try:
            if msg["op"] == "lookup":
                if name not in ns:
                    out = {"kind": "missing"}
                elif isinstance(ns[name], types.ModuleType):
                    out = {"kind": "module", "module": ns[name].__name__}
                elif callable(ns[name]):
                    out = {"kind": "callable"}
                else:
                    out = {"kind": "value", "value": encode(ns[name])}
            else:
                result = ns[name](*decode(msg["args"]), **decode(msg["kwargs"]))
                out = {"ok": encode(result)}
        except BaseException as e:
            out = {"exc": type(e).__name__, "msg": describe(e)}
        send(resp, out)


class RemoteError(Exception):
    pass


class Remote:
    def __init__(self, req, resp):
        self.req, self.resp = req, resp

    def request(self, msg):
        send(self.req, msg)
        return recv(self.resp)

    def proxy(self, name):
        def call(*args, **kwargs):
            r = self.request({"op": "call", "name": name, "args": encode(list(args)),
                              "kwargs": {"d": [[k, encode(v)] for k, v in kwargs.items()]}})
            if "exc" in r:
                raise RemoteError(r["exc"], r["msg"])
            return decode(r["ok"])
        call.__name__ = name
        return call


class CheckGlobals(dict):
    """Globals of check(): names it does not define resolve in the solution's process."""

    def __missing__(self, key):
        if hasattr(builtins, key):
            raise KeyError(key)
        r = self.remote.request({"op": "lookup", "name": key})
        if r.get("kind") == "callable":
            v = self.remote.proxy(key)
        elif r.get("kind") == "value":
            v = decode(r["value"])
        elif r.get("kind") == "module" and r["module"].split(".")[0] in sys.stdlib_module_names:
            v = importlib.import_module(r["module"])
        else:
            raise KeyError(key)
        self[key] = v
        return v


def run_check(remote, check_src, entry):
    try:
        load = recv(remote.resp)
        if load.get("load") is not None:
            return ("MLE" if load.get("exc") == "MemoryError" else "RE"), "loading: " + load["load"]
        g = CheckGlobals()
        g.remote = remote
        g["__builtins__"], g["__name__"] = builtins, "__check__"
        exec(compile(check_src, "check.py", "exec"), g)
        try:
            candidate = g[entry]
        except KeyError:
            return "RE", "the solution does not define " + entry
        g["check"](candidate)
        return "AC", ""
    except AssertionError as e:
        import traceback  # only on failure: it pulls in linecache and tokenize

        lines = [f.lineno for f in traceback.extract_tb(e.__traceback__) if f.filename == "check.py"]
        return "WA", "assertion failed at check.py:%s %s" % (lines[-1] if lines else "?", str(e)[:200])
    except RemoteError as e:
        return ("MLE" if e.args[0] == "MemoryError" else "RE"), e.args[1]
    except EOFError:
        return "RE", "the solution's process died"
    except MemoryError:
        return "MLE", "MemoryError"
    except BaseException as e:
        return "RE", describe(e)


def read_all(fd):
    parts = []
    while True:
        b = os.read(fd, 1 << 16)
        if not b:
            return b"".join(parts).decode()
        parts.append(b)


def report(verdict, detail, token):
    os.write(RESULT_FD, ("%s %s %s" % (token, verdict, detail.replace("\n", " "))).encode("utf-8", "replace"))


def main():
    box, entry = sys.argv[1], sys.argv[2]
    with open(box + "/solution.py", "rb") as f:
        src = f.read()
    try:
        code = compile(src, "solution.py", "exec")
    except (SyntaxError, ValueError) as e:
        token = read_all(TOKEN_FD).split("\n", 1)[0]
        report("CE", describe(e), token)
        os._exit(0)
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            for fd in (TOKEN_FD, RESULT_FD, req_w, resp_r):
                os.close(fd)
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            serve(code, req_r, resp_w)
        finally:
            os._exit(1)
    os.close(req_r)
    os.close(resp_w)
    token, check_src = read_all(TOKEN_FD).split("\n", 1)
    verdict, detail = run_check(Remote(req_w, resp_r), check_src, entry)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    report(verdict, detail, token)
    os._exit(0)


main()
)PY";

}  // namespace grpo::reward::detail
