// Owl's Lambda runtime for Node.js: no dependencies beyond Node itself.
//
// The sandbox runs it as
//
//	/usr/bin/node /var/runtime/node/bootstrap.mjs
//
// with the Lambda environment (AWS_LAMBDA_RUNTIME_API, _HANDLER,
// LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_*, NODE_PATH, ...). It speaks the
// 2018-06-01 Runtime API and follows the conventions of Lambda's own Node.js
// runtime (aws-lambda-nodejs-runtime-interface-client): the handler string,
// CommonJS and ES modules, async and callback handlers, the context object,
// the error objects {errorType, errorMessage, trace} and the text log format
// "<ISO time>\t<request id>\t<LEVEL>\t<message>".
//
// It runs in three phases:
//
//  1. Runtime setup: everything at module level below (Node's built-in
//     modules, the runtime's functions, process hooks). It reads no
//     environment variable and no user file: it is the same for every
//     function.
//  2. main(): the function's side of the runtime setup (console patching
//     with AWS_LAMBDA_LOG_LEVEL, the Runtime API client), then loadHandler(),
//     which reads _HANDLER and LAMBDA_TASK_ROOT and loads the user's module —
//     the first point at which user code runs.
//  3. The invocation loop: /next, run the handler, /response or /error.
//
// Pre-warming: "start node and load the runtime" (phase 1, most of a cold
// start's fixed cost) is deliberately separate from "load the handler". A
// warm pool can start `node bootstrap.mjs` before any code or function is
// known and hold the process at the top of main() (for example blocked on a
// read from an inherited fd that later delivers the task root, handler and
// function environment). Nothing done before that point depends on a
// function, so a pre-started process never carries state from one function
// to another. (Node reads NODE_PATH at start-up; a pool must start node with
// the final value, which is the same for every function of a runtime.)

import { createRequire } from 'node:module';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Writable } from 'node:stream';
import util from 'node:util';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);

// ---------------------------------------------------------------------------
// Errors

// Runtime.* error classes, named as Lambda names them.
function runtimeError(name) {
  const cls = class extends Error {};
  Object.defineProperty(cls, 'name', { value: name });
  cls.prototype.name = 'Runtime.' + name;
  return cls;
}
const ImportModuleError = runtimeError('ImportModuleError');
const HandlerNotFound = runtimeError('HandlerNotFound');
const MalformedHandlerName = runtimeError('MalformedHandlerName');
const UserCodeSyntaxError = runtimeError('UserCodeSyntaxError');
const NodeJsExit = runtimeError('NodeJsExit');
class UnhandledPromiseRejection extends Error {
  constructor(reason) {
    super(safeString(reason));
    this.reason = reason;
  }
}
UnhandledPromiseRejection.prototype.name = 'Runtime.UnhandledPromiseRejection';

function safeString(v) {
  try {
    return String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

function looksLikeError(v) {
  return (
    v !== null &&
    typeof v === 'object' &&
    typeof v.name === 'string' &&
    typeof v.message === 'string' &&
    typeof v.stack === 'string'
  );
}

// errorResponse is the body of /error and /init/error, as Lambda's Node
// runtime builds it: for an Error, its name, message and stack lines; for
// anything else thrown or rejected (a string, a number, a plain object),
// errorType is its typeof ("string", "object", ...), errorMessage its
// String() and trace is empty.
function errorResponse(err) {
  try {
    if (util.types.isNativeError(err) || looksLikeError(err)) {
      return {
        errorType: (typeof err.name === 'string' && err.name) || 'Error',
        errorMessage: typeof err.message === 'string' ? err.message : safeString(err.message),
        trace: typeof err.stack === 'string' ? err.stack.split('\n') : [],
      };
    }
    return { errorType: typeof err, errorMessage: safeString(err), trace: [] };
  } catch {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
      trace: [],
    };
  }
}

// formatForLog renders an error as Lambda's text log does after a label:
// a tab and a JSON object with errorType, errorMessage, the error's own
// enumerable properties and the stack as an array of lines.
// (Lambda logs a thrown non-Error as an Error of its String(); so does
// this, without the stack of that wrapper, which would only show the
// runtime's own frames.)
function formatForLog(err) {
  const isError = util.types.isNativeError(err) || err instanceof Error;
  const e = isError ? err : new Error(safeString(err));
  try {
    const obj = { errorType: e.name, errorMessage: e.message, code: e.code };
    if (isError) {
      for (const k of Object.keys(e)) {
        if (k !== 'reason' && k !== 'promise') obj[k] = e[k];
      }
      if (typeof e.stack === 'string') obj.stack = e.stack.split('\n');
    }
    return '\t' + JSON.stringify(obj);
  } catch {
    return '\t' + JSON.stringify(errorResponse(e));
  }
}

// ---------------------------------------------------------------------------
// Logging
//
// console.log/info/warn/error/debug/trace/fatal write one record each:
// "<ISO time>\t<request id>\t<LEVEL>\t<util.format(...args)>\n" on stdout
// (Lambda's text format). Newlines inside the message are kept as they are;
// the record always ends with one "\n". Records are written synchronously
// (fs.writeSync on fd 1), so everything logged before a handler finishes is
// in the pipe before its /response or /error is posted. The request id is
// "undefined" during init (as in Lambda) and stays the last one between
// invocations.

const REQUEST_ID = Symbol.for('aws.lambda.runtime.requestId');
globalThis[REQUEST_ID] = undefined;

// process.stdout/stderr are created lazily by Node. Creating the stream of
// a pipe makes its fd non-blocking, and writes through it may be queued;
// record whether user code created them, so that log records can keep
// their order behind queued data and the runtime can wait for it before
// posting a result, without creating the streams itself.
const userStreams = { stdout: null, stderr: null };
for (const name of ['stdout', 'stderr']) {
  const d = Object.getOwnPropertyDescriptor(process, name);
  if (d && d.configurable && typeof d.get === 'function') {
    Object.defineProperty(process, name, {
      configurable: true,
      enumerable: d.enumerable,
      get() {
        const s = d.get.call(this);
        userStreams[name] = s;
        return s;
      },
    });
  }
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

// writeFdSync writes all of s to fd, waiting out EAGAIN (a non-blocking pipe
// that is full) and dropping the data if the reader is gone.
function writeFdSync(fd, s) {
  const buf = Buffer.from(s, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e && e.code === 'EAGAIN') {
        Atomics.wait(sleepCell, 0, 0, 1);
        continue;
      }
      return; // EPIPE, EBADF: nobody is reading
    }
  }
}

function writeOut(fd, s) {
  const stream = fd === 1 ? userStreams.stdout : userStreams.stderr;
  if (stream && stream.writableLength > 0 && !stream.destroyed) {
    // User code has writes of its own queued on this fd: stay behind them.
    stream.write(s);
    return;
  }
  writeFdSync(fd, s);
}

function logRecord(level, args) {
  return `${new Date().toISOString()}\t${globalThis[REQUEST_ID]}\t${level}\t${util.format(...args)}\n`;
}

// With AWS_LAMBDA_LOG_FORMAT=JSON (LoggingConfig.LogFormat JSON), each
// record is one JSON object instead, as Lambda's runtime writes it:
// timestamp, level, requestId and message — a lone argument as itself (an
// Error as errorType, errorMessage, stackTrace and its own properties),
// several util.format-ted, with the first Error's errorType, errorMessage
// and stackTrace beside.
let jsonLogs = false;

function jsonErrorReplacer(_, value) {
  if (value instanceof Error) {
    return Object.assign(
      {
        errorType: value?.constructor?.name ?? 'UnknownError',
        errorMessage: value.message,
        stackTrace: typeof value.stack === 'string' ? value.stack.split('\n') : value.stack,
      },
      value,
    );
  }
  return value;
}

function jsonRecord(level, args) {
  const rec = { timestamp: new Date().toISOString(), level, requestId: globalThis[REQUEST_ID] };
  if (args.length === 1) {
    rec.message = args[0];
    try {
      return JSON.stringify(rec, jsonErrorReplacer) + '\n';
    } catch {
      rec.message = util.format(rec.message);
      return JSON.stringify(rec) + '\n';
    }
  }
  rec.message = util.format(...args);
  const err = args.find((a) => a instanceof Error);
  if (err) {
    rec.errorType = err?.constructor?.name ?? 'UnknownError';
    rec.errorMessage = err.message;
    rec.stackTrace = typeof err.stack === 'string' ? err.stack.split('\n') : [];
  }
  return JSON.stringify(rec) + '\n';
}

const LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];
let minLevel = 0;

// patchConsole replaces console's logging methods. Records below
// AWS_LAMBDA_LOG_LEVEL (when set) are dropped, as in Lambda.
function patchConsole() {
  jsonLogs = (process.env.AWS_LAMBDA_LOG_FORMAT || '').toUpperCase() === 'JSON';
  minLevel = Math.max(0, LEVELS.indexOf((process.env.AWS_LAMBDA_LOG_LEVEL || 'TRACE').toUpperCase()));
  const format = jsonLogs ? jsonRecord : logRecord;
  const make = (level) => {
    if (LEVELS.indexOf(level) < minLevel) return () => {};
    return (...args) => writeOut(1, format(level, args));
  };
  console.trace = make('TRACE'); // like Lambda: the message only, no stack
  console.debug = make('DEBUG');
  console.info = make('INFO');
  console.log = console.info;
  console.warn = make('WARN');
  console.error = make('ERROR');
  console.fatal = make('FATAL');
}

// logError logs an error the runtime caught: in JSON, as console.error of
// the error alone (dropped below AWS_LAMBDA_LOG_LEVEL, as Lambda does).
function logError(label, err) {
  if (!jsonLogs) {
    writeOut(1, logRecord('ERROR', [label, formatForLog(err)]));
    return;
  }
  if (LEVELS.indexOf('ERROR') < minLevel) return;
  let e = err;
  if (!(util.types.isNativeError(err) || err instanceof Error)) {
    e = new Error(safeString(err));
    e.stack = undefined; // the wrapper's stack would show only the runtime's frames
  }
  writeOut(1, jsonRecord('ERROR', [e]));
}

// waitForUserStdio resolves when writes user code queued on process.stdout
// or process.stderr have reached the fd.
function waitForUserStdio() {
  const pending = [];
  for (const s of [userStreams.stdout, userStreams.stderr]) {
    if (s && s.writableLength > 0 && !s.destroyed) {
      pending.push(new Promise((resolve) => s.write('', () => resolve())));
    }
  }
  return pending.length === 0 ? null : Promise.all(pending);
}

// ---------------------------------------------------------------------------
// Runtime API client: node's http with one keep-alive socket.

class RuntimeAPI {
  constructor(hostPort) {
    const i = hostPort.lastIndexOf(':');
    if (i <= 0) throw new Error(`AWS_LAMBDA_RUNTIME_API is not host:port: ${JSON.stringify(hostPort)}`);
    this.host = hostPort.slice(0, i).replace(/^\[(.*)\]$/, '$1');
    this.port = Number(hostPort.slice(i + 1));
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    this.base = '/2018-06-01/runtime';
  }

  request(method, p, body, headers) {
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: this.host, port: this.port, method, path: this.base + p, agent: this.agent, headers },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
          res.on('aborted', () => reject(new Error('response aborted')));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  next() {
    return this.request('GET', '/invocation/next');
  }

  post(p, bodyString, errorType) {
    const body = Buffer.from(bodyString, 'utf8');
    const headers = { 'Content-Type': 'application/json', 'Content-Length': body.length };
    if (errorType !== undefined && /^[\x20-\x7e]+$/.test(errorType)) {
      headers['Lambda-Runtime-Function-Error-Type'] = errorType;
    }
    return this.request('POST', p, body, headers);
  }
}

// fatal ends the runtime on a broken Runtime API (a 5xx is Lambda's "the
// container is going away", a network error means the same).
function fatal(what, err) {
  writeFdSync(2, `owl node runtime: ${what}: ${err && err.message ? err.message : safeString(err)}\n`);
  process.exit(1);
}

// ---------------------------------------------------------------------------
// Process-wide state and hooks

let api = null; // the RuntimeAPI, set by main
let phase = 'init'; // 'init' until the handler is loaded, then 'ready'
let initFailing = false;
let current = null; // the running invocation: { fail(err) }, until its result is known
let finishing = false; // from the invocation's result until its post is answered
let exitAfterPost = null; // exit code, once an uncaught error has doomed the process

// The 'beforeExit' hook: Node emits beforeExit when the event loop is
// empty. The runtime's own idle keep-alive socket does not keep the loop
// alive (the Agent unrefs free sockets), so during an invocation this means
// "the handler has nothing left to do".
let onEmptyLoop = null;
process.on('beforeExit', () => {
  const f = onEmptyLoop;
  onEmptyLoop = null;
  if (f) f();
  else if (phase === 'init' && !initFailing && api) {
    failInit(new NodeJsExit('The event loop emptied while the handler module was loading: a top-level await never settled.'));
  }
});

process.on('uncaughtException', (err) => dying('Uncaught Exception', err, 129));
process.on('unhandledRejection', (reason) =>
  dying('Unhandled Promise Rejection', new UnhandledPromiseRejection(reason), 128),
);

// dying handles an uncaught exception or unhandled rejection, as Lambda does:
// during init it is an init error; during an invocation it becomes that
// invocation's error; then the process exits (129 or 128).
function dying(label, err, code) {
  if (phase === 'init') {
    failInit(err);
    return;
  }
  logError(label, err);
  if (exitAfterPost !== null) return;
  exitAfterPost = code;
  if (current) {
    current.fail(err, true); // the loop posts it (logged already), then exits
  } else if (!finishing) {
    process.exit(code);
  } // else the loop exits once the result in progress is posted
}

// failInit reports an init failure: Lambda's log record on stderr, then
// /runtime/init/error, then exit 1.
async function failInit(err) {
  if (initFailing) return;
  initFailing = true;
  writeFdSync(2, logRecord('ERROR', ['Uncaught Exception', formatForLog(err)]));
  const body = errorResponse(err);
  try {
    const res = await api.post('/init/error', JSON.stringify(body), body.errorType);
    if (res.status !== 202) writeFdSync(2, `owl node runtime: /init/error answered ${res.status}: ${res.body}\n`);
  } catch (e) {
    writeFdSync(2, `owl node runtime: posting /init/error: ${e.message}\n`);
  }
  process.exit(1);
}

// ---------------------------------------------------------------------------
// Phase 2: loading the handler

// hasTypeModule reports whether the nearest package.json above dir says
// "type": "module" (not looking past a node_modules directory).
function hasTypeModule(dir) {
  for (;;) {
    if (path.basename(dir) === 'node_modules') return false;
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        return JSON.parse(fs.readFileSync(pj, 'utf8'))?.type === 'module';
      } catch (e) {
        console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, e);
        return false;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return false;
    dir = parent;
  }
}

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

// loadModule loads <taskRoot>/<moduleRoot>/<name> the way Lambda does: the
// file as named (CommonJS), then .js (CommonJS, or an ES module under
// "type": "module"), .mjs (ES module), .cjs (CommonJS); failing those,
// Node's own resolution from the task root (node_modules, NODE_PATH).
async function loadModule(taskRoot, moduleRoot, name) {
  const base = path.resolve(taskRoot, moduleRoot, name);
  const esm = hasTypeModule(path.dirname(base));
  const candidates = [
    [base, 'cjs'],
    [base + '.js', esm ? 'esm' : 'cjs'],
    [base + '.mjs', 'esm'],
    [base + '.cjs', 'cjs'],
  ];
  try {
    for (const [file, kind] of candidates) {
      if (!isFile(file)) continue;
      return kind === 'esm' ? await import(pathToFileURL(file).href) : require(file);
    }
    const resolved = require.resolve(name, { paths: [taskRoot, path.join(taskRoot, moduleRoot)] });
    return require(resolved);
  } catch (e) {
    if (e instanceof SyntaxError) throw new UserCodeSyntaxError(safeString(e));
    if (e && (e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_MODULE_NOT_FOUND')) {
      throw new ImportModuleError(safeString(e));
    }
    throw e;
  }
}

// loadHandler resolves _HANDLER ("file.export", "dir/file.export", or
// "file.nested.export") under LAMBDA_TASK_ROOT and returns the function.
// It throws Runtime.MalformedHandlerName, Runtime.ImportModuleError,
// Runtime.UserCodeSyntaxError, Runtime.HandlerNotFound, or whatever the
// module's own top level throws.
async function loadHandler() {
  const taskRoot = path.resolve(process.env.LAMBDA_TASK_ROOT || '/var/task');
  const full = process.env._HANDLER || '';
  if (full.includes('..')) {
    throw new MalformedHandlerName(
      `'${full}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const slash = full.lastIndexOf('/');
  const moduleRoot = full.slice(0, slash + 1);
  const m = /^([^.]*)\.(.*)$/.exec(full.slice(slash + 1));
  if (!m || m[1] === '' || m[2] === '') throw new MalformedHandlerName('Bad handler');
  const [, name, exportPath] = m;

  const mod = await loadModule(taskRoot, moduleRoot, name);
  const fn = exportPath.split('.').reduce((o, k) => (o == null ? undefined : o[k]), mod);
  if (!fn) throw new HandlerNotFound(`${full} is undefined or not exported`);
  if (typeof fn !== 'function') throw new HandlerNotFound(`${full} is not a function`);
  return fn;
}

// ---------------------------------------------------------------------------
// Phase 3: invocations

function parseJSONHeader(v, what) {
  if (v === undefined || v === '') return undefined;
  try {
    return JSON.parse(v);
  } catch (e) {
    throw new Error(`Cannot parse ${what} as json: ${safeString(e)}`);
  }
}

// runHandler runs one invocation and resolves to {ok: true, value} or
// {ok: false, error}. Completion, as in Lambda's runtime:
//   - a returned promise (async handlers): its settlement, at once;
//   - callback(err, result): an error at once; a result at once if
//     context.callbackWaitsForEmptyEventLoop is false, else when the event
//     loop has emptied (timers, sockets... of the handler are done);
//   - context.succeed/fail/done: at once;
//   - a value returned synchronously (not undefined) by a handler declaring
//     fewer than 3 parameters: that value, at once (Lambda's runtime would
//     ignore it and answer null);
//   - none of these and the loop empties: null, or Runtime.NodeJsExit for
//     an async function whose promise never settled.
// Only the first of these counts. An uncaught exception or unhandled
// rejection meanwhile fails the invocation (see dying).
function runHandler(handler, isAsync, inv) {
  return new Promise((resolve) => {
    let reported = false;
    let called = false; // one of callback/done/succeed/fail/promise was used
    const report = (out) => {
      if (reported) return;
      reported = true;
      onEmptyLoop = null;
      current = null;
      finishing = true;
      resolve(out);
    };
    const ok = (value) => report({ ok: true, value });
    const fail = (error, logged = false) => report({ ok: false, error, logged });
    current = { fail };

    let waitForEmptyLoop = true;
    const once =
      (f) =>
      (...args) => {
        if (called) return;
        called = true;
        f(...args);
      };
    const done = (err, result) => (err !== undefined && err !== null ? fail(err) : ok(result));
    const callback = once((err, result) => {
      if (err !== undefined && err !== null) return fail(err);
      if (!waitForEmptyLoop) return ok(result);
      onEmptyLoop = () => setImmediate(() => ok(result));
    });
    onEmptyLoop = () => (isAsync ? fail(new NodeJsExit(NODE_JS_EXIT_MESSAGE)) : ok(null));

    let context;
    let event;
    try {
      context = {
        get callbackWaitsForEmptyEventLoop() {
          return waitForEmptyLoop;
        },
        set callbackWaitsForEmptyEventLoop(v) {
          waitForEmptyLoop = v;
        },
        succeed: once((result) => ok(result)),
        fail: once((err) => fail(err === undefined || err === null ? 'handled' : err)),
        done: once(done),
        functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
        functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
        memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
        logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
        logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
        clientContext: parseJSONHeader(inv.clientContext, 'ClientContext'),
        identity: parseJSONHeader(inv.cognitoIdentity, 'CognitoIdentity'),
        invokedFunctionArn: inv.functionArn,
        awsRequestId: inv.requestId,
        getRemainingTimeInMillis: () => inv.deadlineMs - Date.now(),
      };
      event = JSON.parse(inv.body);
    } catch (e) {
      fail(e);
      return;
    }
    try {
      const r = handler(event, context, callback);
      if (r !== null && (typeof r === 'object' || typeof r === 'function') && typeof r.then === 'function') {
        r.then(
          once((v) => ok(v)),
          once((e) => fail(e === undefined || e === null ? 'handled' : e)),
        );
      } else if (handler.length < 3 && r !== undefined && !called) {
        called = true;
        ok(r);
      }
    } catch (e) {
      // A throw after the callback (or context.succeed...) was used is
      // ignored, as in Lambda: the first completion counts.
      if (!called) {
        called = true;
        fail(e === undefined || e === null ? 'handled' : e);
      }
    }
  });
}

const NODE_JS_EXIT_MESSAGE =
  "The event loop emptied before the async handler's promise settled. This is most commonly caused by a Promise that was never resolved or rejected.";

async function invokeOnce(handler, isAsync) {
  let res;
  try {
    res = await api.next();
  } catch (e) {
    fatal('GET /invocation/next', e);
  }
  if (res.status !== 200) fatal('GET /invocation/next', new Error(`HTTP ${res.status}: ${res.body}`));
  const h = res.headers;
  const inv = {
    requestId: h['lambda-runtime-aws-request-id'],
    deadlineMs: Number(h['lambda-runtime-deadline-ms']),
    functionArn: h['lambda-runtime-invoked-function-arn'],
    clientContext: h['lambda-runtime-client-context'],
    cognitoIdentity: h['lambda-runtime-cognito-identity'],
    body: res.body.toString('utf8'),
  };
  if (!inv.requestId) fatal('GET /invocation/next', new Error('no Lambda-Runtime-Aws-Request-Id header'));
  globalThis[REQUEST_ID] = inv.requestId;
  const trace = h['lambda-runtime-trace-id'];
  if (trace) process.env._X_AMZN_TRACE_ID = trace;
  else delete process.env._X_AMZN_TRACE_ID;

  if (handler[STREAMING] === 'response') {
    await invokeStreaming(handler, inv);
    return;
  }
  const out = await runHandler(handler, isAsync, inv);

  let p, body, errorType;
  if (out.ok) {
    try {
      // JSON.stringify gives undefined for a function or a symbol: null.
      body = JSON.stringify(out.value === undefined ? null : out.value) ?? 'null';
      p = `/invocation/${encodeURIComponent(inv.requestId)}/response`;
    } catch {
      out.ok = false;
      out.error = new Error('Unable to stringify response body');
    }
  }
  if (!out.ok) {
    if (!out.logged) logError('Invoke Error', out.error);
    const obj = errorResponse(out.error);
    body = JSON.stringify(obj);
    errorType = obj.errorType;
    p = `/invocation/${encodeURIComponent(inv.requestId)}/error`;
  }
  // Log records are already written (synchronously); wait for writes the
  // handler queued on process.stdout/stderr, so the log precedes the result.
  const stdio = waitForUserStdio();
  if (stdio) await stdio;

  let res2;
  try {
    res2 = await api.post(p, body, errorType);
  } catch (e) {
    fatal('POST ' + p, e);
  }
  finishing = false;
  if (res2.status >= 500) fatal('POST ' + p, new Error(`HTTP ${res2.status}: ${res2.body}`));
  if (res2.status !== 202) {
    // 413 (too large) and 4xx refusals end this invocation on the
    // platform's side; carry on with the next one.
    writeFdSync(2, `owl node runtime: POST ${p} answered ${res2.status}: ${res2.body}\n`);
  }
  if (exitAfterPost !== null) process.exit(exitAfterPost);
}

// ---------------------------------------------------------------------------
// Response streaming, as Lambda's Node.js runtime offers it: a handler
// wrapped in awslambda.streamifyResponse is called as
// handler(event, responseStream, context), and what it writes to
// responseStream goes to the caller as it is written: one POST /response
// with Lambda-Runtime-Function-Response-Mode: streaming and a chunked body,
// whose trailers report an error raised after the first byte.
// awslambda.HttpResponseStream.from(stream, {statusCode, headers, cookies})
// starts the body with that prelude for function URLs: its JSON, then 8
// NUL bytes, under the content type
// application/vnd.awslambda.http-integration-response.

const STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HTTP_INTEGRATION = 'application/vnd.awslambda.http-integration-response';

class HttpResponseStream {
  static from(underlyingStream, prelude) {
    underlyingStream.setContentType(HTTP_INTEGRATION);
    const metadata = JSON.stringify(prelude);
    underlyingStream._onBeforeFirstWrite = (write) => {
      write(metadata);
      write(new Uint8Array(8));
    };
    return underlyingStream;
  }
}

globalThis.awslambda = {
  streamifyResponse(handler) {
    handler[STREAMING] = 'response';
    return handler;
  },
  HttpResponseStream,
};

// openResponseStream starts the streamed /response of invocation
// requestId: the Writable the handler gets, the request under it, and a
// promise of the Runtime API's answer. Headers go with the first byte, so
// setContentType works until then. A broken connection (Owl cuts it when
// the caller went away) ends the runtime: Owl recycles the environment.
function openResponseStream(requestId) {
  const p = `/invocation/${encodeURIComponent(requestId)}/response`;
  const req = http.request({
    host: api.host,
    port: api.port,
    method: 'POST',
    path: api.base + p,
    agent: api.agent,
    headers: {
      'Content-Type': 'application/octet-stream',
      'Lambda-Runtime-Function-Response-Mode': 'streaming',
      'Transfer-Encoding': 'chunked',
      Trailer: 'Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body',
    },
  });
  req.on('error', (e) => fatal('POST ' + p, e));
  const answered = new Promise((resolve) => {
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    });
  });
  let first = true;
  const beforeFirst = () => {
    if (!first) return;
    first = false;
    if (typeof stream._onBeforeFirstWrite === 'function') stream._onBeforeFirstWrite((c) => req.write(c));
  };
  const stream = new Writable({
    write(chunk, encoding, cb) {
      beforeFirst();
      req.write(chunk, cb);
    },
    final(cb) {
      beforeFirst();
      cb();
    },
  });
  stream.setContentType = (type) => {
    if (!req.headersSent) req.setHeader('Content-Type', type);
  };
  return { stream, req, answered, path: p };
}

// invokeStreaming runs one invocation of a streaming handler.
async function invokeStreaming(handler, inv) {
  const { stream, req, answered, path: p } = openResponseStream(inv.requestId);
  const run = (event, context) => {
    const r = handler(event, stream, context);
    if (r !== null && typeof r === 'object' && typeof r.then === 'function') return r;
    // Not a promise: the handler is done when it ends the stream.
    return new Promise((resolve, reject) => {
      stream.on('finish', resolve);
      stream.on('error', reject);
    });
  };
  const out = await runHandler(run, true, inv);
  if (out.ok && !stream.writableFinished) {
    await new Promise((resolve) => stream.end(resolve));
  }
  if (!out.ok) {
    if (!out.logged) logError('Invoke Error', out.error);
    const obj = errorResponse(out.error);
    req.addTrailers({
      'Lambda-Runtime-Function-Error-Type': /^[\x20-\x7e]+$/.test(obj.errorType) ? obj.errorType : 'Error',
      'Lambda-Runtime-Function-Error-Body': Buffer.from(JSON.stringify(obj)).toString('base64'),
    });
  }
  const stdio = waitForUserStdio();
  if (stdio) await stdio;
  req.end();
  const res = await answered;
  finishing = false;
  if (res.status >= 500) fatal('POST ' + p, new Error(`HTTP ${res.status}: ${res.body}`));
  if (res.status !== 202) writeFdSync(2, `owl node runtime: POST ${p} answered ${res.status}: ${res.body}\n`);
  if (exitAfterPost !== null) process.exit(exitAfterPost);
}

// ---------------------------------------------------------------------------
// main

// Pre-warmed environments: Owl starts this file before any function is
// chosen for it, with the runtime's generic environment and _OWL_PREWARM=1.
// main() then first blocks on GET /2018-06-01/runtime/owl/specialize, which
// Owl answers once the function's code is attached to /var/task, with the
// function's whole environment: it replaces process.env (what JavaScript
// sees, and what child processes get; /proc/self/environ keeps the generic
// start-up environment). A process is specialised once, for one function.
function specialize() {
  const address = process.env.AWS_LAMBDA_RUNTIME_API || '';
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: address.slice(0, i).replace(/^\[|\]$/g, ''),
        port: Number(address.slice(i + 1)),
        path: '/2018-06-01/runtime/owl/specialize',
        method: 'GET',
        agent: false,
        headers: { Connection: 'close' },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          if (res.statusCode !== 200) {
            reject(new Error(`HTTP ${res.statusCode}`));
            return;
          }
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')).env);
          } catch (e) {
            reject(e);
          }
        });
      },
    );
    req.on('error', reject);
    req.end();
  }).then((env) => {
    for (const k of Object.keys(process.env)) delete process.env[k];
    for (const kv of env) {
      const j = kv.indexOf('=');
      process.env[kv.slice(0, j)] = kv.slice(j + 1);
    }
    // Our working directory is the empty slot beneath the function's code.
    try {
      process.chdir(process.env.LAMBDA_TASK_ROOT || '/var/task');
    } catch {
      // loadHandler reports a missing task root.
    }
  });
}

async function main() {
  // A pre-warmed process waits here: the runtime is loaded, nothing
  // function-specific has happened yet (see the comment at the top of this
  // file).
  if (process.env._OWL_PREWARM === '1') {
    try {
      await specialize();
    } catch (e) {
      writeFdSync(2, `owl node runtime: specialize: ${e && e.message}\n`);
      process.exit(1);
    }
  }

  patchConsole();
  try {
    api = new RuntimeAPI(process.env.AWS_LAMBDA_RUNTIME_API || '');
  } catch (e) {
    fatal('start', e);
  }

  let handler;
  try {
    handler = await loadHandler();
  } catch (e) {
    await failInit(e);
    return;
  }
  if (initFailing) return;
  phase = 'ready';
  const isAsync = handler.constructor?.name === 'AsyncFunction';
  for (;;) {
    await invokeOnce(handler, isAsync);
  }
}

await main();
