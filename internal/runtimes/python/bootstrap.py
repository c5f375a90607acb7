"""Owl's Lambda runtime for Python.

The sandbox runs it as

    /usr/bin/python3.X -u /var/runtime/python/bootstrap.py

with the function's environment (_HANDLER, AWS_LAMBDA_RUNTIME_API,
LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_NAME, ...). It imports the handler
named by _HANDLER ("module.function" or "pkg/module.function", relative to
LAMBDA_TASK_ROOT), then serves invocations over the Lambda Runtime API
(2018-06-01) on one persistent HTTP connection, with the handler signature,
context object, error objects and log format of AWS Lambda's Python runtime.

Standard library only; Python 3.9 or newer.

Pre-warming: importing this file (interpreter start plus the imports below)
does nothing that depends on a function. A zygote may import it as a module
(`__name__ != "__main__"`, so nothing runs), fork, and in the child, once the
function's environment and code are in place, call main(): only then are the
environment read and the handler loaded (load_handler). Two functions never
share the interpreter state created after the fork.

Owl's pre-warmed environments start this file with the generic environment
of the runtime and _OWL_PREWARM=1: main() then first asks the Runtime API for
its function (specialize()), and only afterwards reads the environment and
loads the handler. An interpreter is specialised once, for one function.
"""

import decimal
import importlib
import json
import logging
import os
import socket
import sys
import time
import traceback

API_VERSION = "/2018-06-01"

# Error types of the runtime's own faults, as Lambda's Python runtime names them.
MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
MARSHAL_ERROR = "Runtime.MarshalError"
UNMARSHAL_ERROR = "Runtime.UnmarshalError"
CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

LOG_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
LOG_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"

# Lambda's names of log levels (AWS_LAMBDA_LOG_LEVEL) → logging's.
LOG_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
    "CRITICAL": logging.CRITICAL,
}

_THIS_FILE = os.path.realpath(__file__)
# Names under which frames of this file and of importlib.import_module appear
# in tracebacks; they are cut from the front of the user's stack traces.
_RUNTIME_FILES = frozenset(
    (
        __file__,
        _THIS_FILE,
        (lambda: 0).__code__.co_filename,
        importlib.__file__,
        os.path.realpath(importlib.__file__),
        importlib.import_module.__code__.co_filename,
    )
)

# The request id of the current (or last) invocation, for log records.
_request_id = ""


class Fault(Exception):
    """A failure the runtime reports with a type of its own (Runtime.*)."""

    def __init__(self, error_type, message, trace=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace or []


# ---------------------------------------------------------------------------
# The context object


class CognitoIdentity(object):
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __init__(self, identity_id=None, pool_id=None):
        self.cognito_identity_id = identity_id
        self.cognito_identity_pool_id = pool_id

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.cognito_identity_id,
            self.cognito_identity_pool_id,
        )


class Client(object):
    __slots__ = [
        "installation_id",
        "app_title",
        "app_version_name",
        "app_version_code",
        "app_package_name",
    ]

    def __repr__(self):
        return "Client([%s])" % ",".join("%s=%s" % (f, getattr(self, f)) for f in self.__slots__)


class ClientContext(object):
    __slots__ = ["custom", "env", "client"]

    def __repr__(self):
        return "ClientContext([custom=%s,env=%s,client=%s])" % (self.custom, self.env, self.client)


def _obj_from_dict(cls, d):
    if d is None:
        return None
    obj = cls()
    get = d.get if isinstance(d, dict) else (lambda _k: None)
    for field in cls.__slots__:
        setattr(obj, field, get(field))
    return obj


def _int_env(name, default):
    try:
        return int(os.environ.get(name, ""))
    except ValueError:
        return default


class LambdaContext(object):
    """The second argument of a handler, as in Lambda's Python runtime."""

    def __init__(self, request_id, deadline_ms, invoked_function_arn, client_context, cognito_identity):
        env = os.environ
        self.aws_request_id = request_id
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = _int_env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", None)
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.client_context = _obj_from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _obj_from_dict(Client, self.client_context.client)
        if isinstance(cognito_identity, dict):
            self.identity = CognitoIdentity(
                cognito_identity.get("cognitoIdentityId"),
                cognito_identity.get("cognitoIdentityPoolId"),
            )
        else:
            self.identity = CognitoIdentity()
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        remaining = self._deadline_ms - time.time_ns() // 1000000
        return remaining if remaining > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,"
            "function_name=%s,memory_limit_in_mb=%s,function_version=%s,"
            "invoked_function_arn=%s,client_context=%s,identity=%s])"
            % (
                self.aws_request_id,
                self.log_group_name,
                self.log_stream_name,
                self.function_name,
                self.memory_limit_in_mb,
                self.function_version,
                self.invoked_function_arn,
                self.client_context,
                self.identity,
            )
        )


# ---------------------------------------------------------------------------
# The Runtime API client


class _ProtocolError(Exception):
    """The Runtime API answered something that is not HTTP/1.1."""


class _Headers(dict):
    """Response headers by lower-case name; get() takes any case."""

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)


class _Connection(object):
    """HTTP/1.1 over one persistent socket, without a timeout (/next is a
    long poll) and without Nagle's delay.

    It speaks just what the Runtime API needs (Content-Length or chunked
    responses), instead of importing http.client: that module pulls in the
    email package and costs ~16 ms of every cold start."""

    def __init__(self, address):
        host, _, port = address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.address = address
        self.sock = None
        self.rfile = None

    def close(self):
        if self.sock is not None:
            try:
                self.rfile.close()
                self.sock.close()
            except OSError:
                pass
        self.sock = self.rfile = None

    def request(self, method, path, body, headers):
        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port))
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            self.rfile = self.sock.makefile("rb")
        body = body or b""
        head = ["%s %s HTTP/1.1" % (method, path), "Host: " + self.address, "Content-Length: %d" % len(body)]
        for k, v in headers.items():
            head.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

        line = self.rfile.readline(65537)
        if not line:
            raise ConnectionResetError("the Runtime API closed the connection")
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise _ProtocolError("bad status line %r" % line[:80])
        status = int(parts[1])
        hdrs = _Headers()
        while True:
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            hdrs[name.strip().lower()] = value.strip()
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self._read_exactly(size))
                self.rfile.readline(3)
            data = b"".join(chunks)
        elif "content-length" in hdrs:
            data = self._read_exactly(int(hdrs["content-length"]))
        else:
            data = self.rfile.read()
            self.close()
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return status, hdrs, data

    def _read_exactly(self, n):
        data = self.rfile.read(n)
        if len(data) != n:
            raise ConnectionResetError("the Runtime API closed the connection mid-body")
        return data


class Invocation(object):
    __slots__ = [
        "request_id",
        "deadline_ms",
        "function_arn",
        "trace_id",
        "client_context",
        "cognito_identity",
        "body",
    ]


class RuntimeAPIError(Exception):
    """The Runtime API cannot be reached or refused a request the runtime
    cannot do without: the environment is unusable, the runtime exits."""


class RuntimeClient(object):
    """The Runtime API over one persistent (keep-alive) connection."""

    def __init__(self, address):
        self.address = address
        self.conn = _Connection(address)
        self.user_agent = "owl-python-runtime/%d.%d.%d" % sys.version_info[:3]

    def _request(self, method, path, body=None, headers=None):
        hdrs = {"User-Agent": self.user_agent}
        if headers:
            hdrs.update(headers)
        # One retry on a fresh connection: a kept-alive connection may have
        # been closed by the server (e.g. after it refused an oversized body).
        for attempt in (1, 2):
            try:
                return self.conn.request(method, API_VERSION + path, body, hdrs)
            except (OSError, ValueError, _ProtocolError) as e:
                self.conn.close()
                if attempt == 2:
                    raise RuntimeAPIError("%s %s: %s: %s" % (method, path, type(e).__name__, e))

    def next(self):
        status, headers, body = self._request("GET", "/runtime/invocation/next")
        if status != 200:
            raise RuntimeAPIError("GET /runtime/invocation/next: HTTP %d: %s" % (status, _text(body)))
        inv = Invocation()
        inv.request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        if not inv.request_id:
            raise RuntimeAPIError("GET /runtime/invocation/next: no Lambda-Runtime-Aws-Request-Id header")
        try:
            inv.deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms", "0"))
        except ValueError:
            inv.deadline_ms = 0
        inv.function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn")
        inv.trace_id = headers.get("Lambda-Runtime-Trace-Id")
        inv.client_context = headers.get("Lambda-Runtime-Client-Context")
        inv.cognito_identity = headers.get("Lambda-Runtime-Cognito-Identity")
        inv.body = body
        return inv

    def _post_result(self, path, body, headers):
        status, _, data = self._request("POST", path, body, headers)
        if status >= 500:
            raise RuntimeAPIError("POST %s: HTTP %d: %s" % (path, status, _text(data)))
        if status != 202:
            # 413 (the platform turned it into Function.ResponseSizeTooLarge),
            # or a refusal of a result already accepted: the invocation is
            # over either way, so carry on with the next one.
            _write_stderr("[WARNING] Runtime API refused POST %s: HTTP %d: %s\n" % (path, status, _text(data)))

    def post_response(self, request_id, body):
        self._post_result(
            "/runtime/invocation/%s/response" % request_id,
            body,
            {"Content-Type": "application/json"},
        )

    def post_error(self, request_id, error):
        self._post_result(
            "/runtime/invocation/%s/error" % request_id,
            _error_json(error),
            {
                "Content-Type": "application/json",
                "Lambda-Runtime-Function-Error-Type": _header_value(error["errorType"]),
            },
        )

    def post_init_error(self, error):
        self._request(
            "POST",
            "/runtime/init/error",
            _error_json(error),
            {
                "Content-Type": "application/json",
                "Lambda-Runtime-Function-Error-Type": _header_value(error["errorType"]),
            },
        )


def _text(data):
    return data.decode("utf-8", "replace").strip()


def _header_value(s):
    # A header value must not break the request: error types never have
    # line breaks, but a user's exception class name is not ours to trust.
    return "".join(c if " " <= c <= "~" else "?" for c in s) or "Unhandled"


def _error_json(error):
    return json.dumps(error).encode("ascii")


# ---------------------------------------------------------------------------
# Logging


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _request_id
        return True


class _StdoutHandler(logging.Handler):
    """Writes formatted records to the current sys.stdout, as Lambda's
    runtime does (the platform captures the process's output)."""

    def emit(self, record):
        try:
            msg = self.format(record)
            if not msg.endswith("\n"):
                msg += "\n"  # a traceback appended by the formatter
            sys.stdout.write(msg)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


# LogRecord attributes that are not "extra" fields of a JSON record.
_RESERVED_RECORD_FIELDS = frozenset(
    (
        "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module",
        "exc_info", "exc_text", "stack_info", "lineno", "funcName", "created", "msecs",
        "relativeCreated", "thread", "threadName", "processName", "process",
        "aws_request_id", "message", "asctime",
    )
)


class _JsonFormatter(logging.Formatter):
    """Lambda's JSON log format (LoggingConfig.LogFormat JSON): one object a
    record — timestamp, level, message, logger, requestId; with an
    exception, errorType, errorMessage, stackTrace and location; then the
    record's extra fields. Fields that are None are left out."""

    def format(self, record):
        levelno = min(50, max(0, record.levelno)) // 10 * 10
        exc = record.exc_info
        result = {
            "timestamp": time.strftime(LOG_DATE_FORMAT, time.gmtime(record.created)) + ".%03dZ" % record.msecs,
            "level": logging.getLevelName(levelno),
            "message": record.getMessage(),
            "logger": record.name,
            "stackTrace": traceback.format_tb(exc[2]) if exc else None,
            "errorType": exc[0].__name__ if exc else None,
            "errorMessage": _safe_str(exc[1]) if exc else None,
            "requestId": getattr(record, "aws_request_id", None),
            "location": "%s:%s:%s" % (record.pathname, record.funcName, record.lineno) if exc else None,
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED_RECORD_FIELDS and key not in result:
                result[key] = value
        result = {k: v for k, v in result.items() if v is not None}
        return json.dumps(result, ensure_ascii=False, default=_safe_str) + "\n"


def _json_logs():
    return os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").strip().upper() == "JSON"


def setup_logging():
    """Configures the root logger like Lambda's: one handler writing
    "[LEVEL]\\t<UTC time>\\t<request id>\\t<message>" lines to stdout, or
    JSON objects when AWS_LAMBDA_LOG_FORMAT is JSON, level from
    AWS_LAMBDA_LOG_LEVEL (default INFO)."""
    if _json_logs():
        formatter = _JsonFormatter()
    else:
        formatter = logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT)
        formatter.converter = time.gmtime
    handler = _StdoutHandler()
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").strip().upper()
    root.setLevel(LOG_LEVELS.get(level, logging.INFO))


def _setup_streams():
    # The platform starts us with -u; without it, line buffering still
    # writes every line as it is printed. Lambda's output is UTF-8 whatever
    # the locale.
    for stream in (sys.stdout, sys.stderr):
        try:
            kwargs = {"line_buffering": True}
            if (stream.encoding or "").lower().replace("-", "") != "utf8":
                kwargs["encoding"] = "utf-8"
                kwargs["errors"] = "backslashreplace"
            stream.reconfigure(**kwargs)
        except (AttributeError, ValueError, OSError):
            pass


def _write_stderr(s):
    try:
        sys.stderr.write(s)
        sys.stderr.flush()
    except Exception:
        pass


def _flush_output():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def log_error(error):
    """Prints an error object to stderr as Lambda's runtime logs it: one
    record, its lines separated by CR, indentation as no-break spaces; in
    the JSON log format, one object: timestamp, level ERROR and the error's
    fields."""
    if _json_logs():
        record = {"timestamp": time.strftime(LOG_DATE_FORMAT, time.gmtime()), "level": "ERROR"}
        record.update(error)
        _write_stderr(json.dumps(record, ensure_ascii=False) + "\n")
        return
    desc = "[ERROR]"
    if error.get("errorType"):
        desc += " " + error["errorType"]
    if error.get("errorMessage"):
        if error.get("errorType"):
            desc += ":"
        desc += " " + error["errorMessage"]
    lines = [desc, "Traceback (most recent call last):"]
    for element in error.get("stackTrace") or []:
        if element == "":
            lines.append("")
            continue
        for line in element.splitlines():
            stripped = line.lstrip(" ")
            lines.append("\u00a0" * (len(line) - len(stripped)) + stripped)
    _write_stderr("\r".join(lines) + "\n")


# ---------------------------------------------------------------------------
# Errors


def make_error(message, error_type, stack_trace, request_id=None):
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id or "",
        "stackTrace": stack_trace or [],
    }


def _safe_str(value):
    try:
        return str(value)
    except Exception:
        return "<exception str() failed>"


def _user_frames(tb):
    """The traceback's frames from the first one that is neither this file
    nor the import machinery: the user's code."""
    frames = traceback.extract_tb(tb)
    for i, frame in enumerate(frames):
        if frame.filename not in _RUNTIME_FILES and not frame.filename.startswith("<frozen importlib."):
            return frames[i:]
    return frames


def error_from_exception(exc, request_id=None):
    """Lambda's error object for an exception raised by user code."""
    if isinstance(exc, Fault):
        return make_error(exc.message, exc.error_type, exc.trace, request_id)
    frames = _user_frames(exc.__traceback__)
    return make_error(
        _safe_str(exc),
        type(exc).__name__,
        traceback.format_list(frames),
        request_id,
    )


# ---------------------------------------------------------------------------
# Loading the handler


def _site_packages(base):
    return os.path.join(base, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")


def setup_sys_path(task_root):
    """Puts the function's code first on sys.path, then its layers, as
    Lambda does: /var/task, /opt/python/lib/python3.X/site-packages,
    /opt/python. This file's own directory is removed so that nothing of
    the runtime shadows the user's modules."""
    own_dir = os.path.dirname(_THIS_FILE)
    front = [task_root, _site_packages("/opt/python"), "/opt/python"]
    rest = [p for p in sys.path if p not in front and not (p and os.path.realpath(p) == own_dir)]
    sys.path[:] = front + rest


def load_handler(handler_name, task_root):
    """Imports the handler's module and returns the handler function.

    Raises Fault with Lambda's error types: Runtime.MalformedHandlerName,
    Runtime.ImportModuleError, Runtime.UserCodeSyntaxError,
    Runtime.HandlerNotFound, Runtime.BuiltInModuleConflict.
    """
    try:
        module_path, function_name = handler_name.rsplit(".", 1)
    except ValueError as e:
        raise Fault(MALFORMED_HANDLER_NAME, "Bad handler '%s': %s" % (handler_name, e))
    module_name = module_path.replace("/", ".")
    if not function_name or any(part == "" for part in module_name.split(".")):
        raise Fault(
            MALFORMED_HANDLER_NAME,
            "Bad handler '%s': expected module.function or path/to/module.function" % handler_name,
        )
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise Fault(
            BUILT_IN_MODULE_CONFLICT,
            "Cannot use built-in module %s as a handler module" % module_path,
        )

    setup_sys_path(task_root)
    try:
        os.chdir(task_root)
    except OSError:
        pass
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise Fault(
            IMPORT_MODULE_ERROR,
            "Unable to import module '%s': %s" % (module_path, _safe_str(e)),
        )
    except SyntaxError as e:
        raise Fault(
            USER_CODE_SYNTAX_ERROR,
            "Syntax error in module '%s': %s" % (module_path, _safe_str(e)),
            ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, (e.text or "").strip())],
        )
    except Exception as e:
        # The module raised while being imported (Lambda's runtime reports
        # the exception's own class as the type; Owl's contract says
        # ImportModuleError, with the exception in the message).
        raise Fault(
            IMPORT_MODULE_ERROR,
            "Unable to import module '%s': %s: %s" % (module_path, type(e).__name__, _safe_str(e)),
            traceback.format_list(_user_frames(e.__traceback__)),
        )

    handler = getattr(module, function_name, None)
    if handler is None:
        raise Fault(
            HANDLER_NOT_FOUND,
            "Handler '%s' missing on module '%s'" % (function_name, module_path),
        )
    return handler


# ---------------------------------------------------------------------------
# Invocations


def _decimal_default(obj):
    if isinstance(obj, decimal.Decimal):
        if obj.is_finite() and obj == obj.to_integral_value():
            return int(obj)
        return float(obj)
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


def marshal_response(result):
    """The JSON of a handler's result, or Fault(Runtime.MarshalError)."""
    try:
        text = json.dumps(result, default=_decimal_default, ensure_ascii=False, allow_nan=False)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: keep them escaped
            return json.dumps(result, default=_decimal_default, allow_nan=False).encode("ascii")
    except Exception as e:
        raise Fault(MARSHAL_ERROR, "Unable to marshal response: %s" % _safe_str(e))


def _parse_json_header(value, name):
    if not value:
        return None
    try:
        return json.loads(value)
    except Exception as e:
        raise Fault(CONTEXT_UNMARSHAL_ERROR, "Unable to parse %s JSON: %s" % (name, e))


def _decode_event(body):
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except Exception as e:
        raise Fault(UNMARSHAL_ERROR, "Unable to unmarshal input: %s" % e)


def handle_invocation(api, handler, inv):
    """Runs one invocation and posts its result or error."""
    global _request_id
    _request_id = inv.request_id
    if inv.trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = inv.trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)

    body = error = None
    try:
        context = LambdaContext(
            inv.request_id,
            inv.deadline_ms,
            inv.function_arn,
            _parse_json_header(inv.client_context, "Client Context"),
            _parse_json_header(inv.cognito_identity, "Cognito Identity"),
        )
        event = _decode_event(inv.body)
        inv.body = None
        body = marshal_response(handler(event, context))
    except Exception as e:
        error = error_from_exception(e, inv.request_id)
        log_error(error)
    # Every line of this invocation is out before the platform hears it ended.
    _flush_output()
    if error is not None:
        api.post_error(inv.request_id, error)
    else:
        api.post_response(inv.request_id, body)


def init(api):
    """Reads the function's environment and loads its handler. On failure,
    logs the error, posts it to /runtime/init/error and exits 1."""
    setup_logging()
    handler_name = os.environ.get("_HANDLER", "")
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or "/var/task"
    try:
        return load_handler(handler_name, task_root)
    except Exception as e:
        error = error_from_exception(e)
        log_error(error)
        _flush_output()
        try:
            api.post_init_error(error)
        except RuntimeAPIError as e2:
            _write_stderr("[ERROR] Runtime API: %s\n" % e2)
        sys.exit(1)


PREWARM_VAR = "_OWL_PREWARM"
SPECIALIZE_PATH = "/runtime/owl/specialize"


def specialize(address):
    """Pre-warmed environment (Owl started this interpreter before any
    function was chosen for it; _OWL_PREWARM=1): block until Owl attaches a
    function's code to /var/task and answers with the function's whole
    environment, which replaces ours. os.environ is what Python code sees
    (and, through putenv, what child processes and C libraries get);
    /proc/self/environ still shows the generic start-up environment."""
    conn = _Connection(address)
    try:
        status, _, body = conn.request("GET", API_VERSION + SPECIALIZE_PATH, b"", {"Connection": "close"})
    except (OSError, ValueError, _ProtocolError) as e:
        _write_stderr("[ERROR] Runtime API: specialize: %s: %s\n" % (type(e).__name__, e))
        sys.exit(1)
    finally:
        conn.close()
    if status != 200:
        _write_stderr("[ERROR] Runtime API: specialize: HTTP %d\n" % status)
        sys.exit(1)
    env = json.loads(body)["env"]
    os.environ.clear()
    for kv in env:
        k, _, v = kv.partition("=")
        os.environ[k] = v
    # Our working directory is the empty slot beneath the function's code.
    try:
        os.chdir(os.environ.get("LAMBDA_TASK_ROOT") or "/var/task")
    except OSError:
        pass


def main():
    # Pre-warming: everything up to here (starting the interpreter, the
    # imports at the top of this file, these definitions) is the same for
    # every function. A zygote can import this file as a module and fork
    # after the imports: the child gets the function's environment, then
    # calls main(), and only init() → load_handler() reads it and imports
    # the user's code. Nothing of one function is ever in the zygote.
    _setup_streams()
    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        _write_stderr("[ERROR] AWS_LAMBDA_RUNTIME_API is not set\n")
        sys.exit(1)
    if os.environ.get(PREWARM_VAR) == "1":
        specialize(address)
        address = os.environ.get("AWS_LAMBDA_RUNTIME_API") or address
    api = RuntimeClient(address)
    handler = init(api)
    try:
        while True:
            handle_invocation(api, handler, api.next())
    except RuntimeAPIError as e:
        _write_stderr("[ERROR] Runtime API: %s\n" % e)
        sys.exit(1)


if __name__ == "__main__":
    main()
