// The job wrapper of Gristmill's TypeScript runtimes, shared by Bun and Deno. It runs in the
// job directory as
//     bun wrapper.mjs SPEC            deno run <permissions> wrapper.mjs SPEC
// where SPEC is the JSON list of main's parameters in source order:
//     [[name, conversion, nullIsUnset], ...]
// conversion is "date" (ISO string -> Date), "bigint" (integer -> BigInt) or null; nullIsUnset
// makes a null argument undefined, so that the parameter's own default applies.
// It reads args.json, calls main(...) with the arguments in that order (main's parameters are
// positional), awaits it and writes result.json: the result as JSON, or
// {"error": {"name", "message", "stack"}} with exit code 1.
// Plain JavaScript: neither runtime has to transpile it. It uses each runtime's own APIs
// (`host` below), not node:fs and node:process: those cost Deno about 25 ms a job.
//
// Warm mode (`bun wrapper.mjs --warm`, `deno run <permissions> wrapper.mjs --warm`): the
// process is started ahead of its job, isolated, in an empty working directory, with the job
// socket as descriptor 3. It reads its job there (a 4-byte big-endian length, then
// {"env", "payload"} as JSON; payload is the runtime's warm_payload: spec, args, files, links,
// env), takes the job's environment, writes the job's files, runs main as above and sends the
// text it would have written to result.json on descriptor 3 instead, then closes it.

const FUNCTION_CALL_DEFAULT = "<function call>";
// Bun names files by path in stack traces, Deno by URL.
const WRAPPER_NAMES = [import.meta.url, decodeURIComponent(new URL(import.meta.url).pathname)];

const WARM_FLAG = "--warm";
// The job socket of a warm process.
const JOB_FD = 3;

const host = typeof Deno === "undefined" ? bunHost() : denoHost();
// Absolute: the script may change directory, its result still lands here.
const JOB_DIR = host.cwd;
const RESULT_PATH = `${JOB_DIR}/result.json`;
const WARM = host.argument === WARM_FLAG;
// Opened now, before the job comes: what it loads is paid ahead of the job too.
const channel = WARM ? await host.jobChannel() : null;

function bunHost() {
  return {
    cwd: process.cwd(),
    argument: process.argv[2],
    readText: (path) => Bun.file(path).text(),
    writeText: (path, text) => Bun.write(path, text),
    exit: (code) => process.exit(code),
    replaceEnv(env) {
      for (const name of Object.keys(process.env)) {
        delete process.env[name];
      }
      Object.assign(process.env, env);
      // Bun.spawn and Bun.spawnSync default to the environment the process started with,
      // not process.env: in a warm process that is the parent's, without the job's
      // variables (WM_TOKEN...). Their default becomes the job's, as in a cold run.
      for (const name of ["spawn", "spawnSync"]) {
        const original = Bun[name];
        Bun[name] = (first, second) =>
          Array.isArray(first) || typeof first === "string"
            ? original(first, { env: { ...process.env }, ...second })
            : original({ env: { ...process.env }, ...first });
      }
    },
    async symlink(target, path) {
      const fs = await import("node:fs");
      fs.symlinkSync(target, path);
    },
    async jobChannel() {
      const fs = await import("node:fs");
      // Blocking reads and writes: until its job comes the process has nothing else to do,
      // and after the result it exits.
      const readExactly = (size) => {
        const buffer = Buffer.alloc(size);
        let got = 0;
        while (got < size) {
          const n = fs.readSync(JOB_FD, buffer.subarray(got));
          if (n === 0) {
            return null;
          }
          got += n;
        }
        return buffer;
      };
      return {
        async receive() {
          const header = readExactly(4);
          const body = header && readExactly(header.readUInt32BE(0));
          return body && JSON.parse(body.toString("utf8"));
        },
        async send(text) {
          const data = Buffer.from(text, "utf8");
          let sent = 0;
          while (sent < data.length) {
            sent += fs.writeSync(JOB_FD, data, sent);
          }
          fs.closeSync(JOB_FD);
        },
      };
    },
    onStrayError(handler) {
      process.on("uncaughtException", handler);
      process.on("unhandledRejection", handler);
    },
  };
}

function denoHost() {
  return {
    cwd: Deno.cwd(),
    argument: Deno.args[0],
    readText: (path) => Deno.readTextFile(path),
    writeText: (path, text) => Deno.writeTextFile(path, text),
    exit: (code) => Deno.exit(code),
    replaceEnv(env) {
      for (const name of Object.keys(Deno.env.toObject())) {
        Deno.env.delete(name);
      }
      for (const [name, value] of Object.entries(env)) {
        try {
          Deno.env.set(name, value);
        } catch {
          // A name or value the OS cannot hold (a NUL, "=" in a name): left out, as a cold
          // run's process could not have had it either.
        }
      }
    },
    symlink: (target, path) => Deno.symlink(target, path),
    async jobChannel() {
      // Deno's own APIs cannot open an inherited descriptor; node:net can (its ~25 ms are
      // paid before the job).
      const net = await import("node:net");
      const { Buffer } = await import("node:buffer");
      const socket = new net.Socket({ fd: JOB_FD, readable: true, writable: true });
      return {
        receive: () =>
          new Promise((resolve, reject) => {
            // Chunks joined once, when the whole job is there (large arguments come in many).
            const chunks = [];
            let size = 0;
            let expected = null;
            const onData = (chunk) => {
              chunks.push(chunk);
              size += chunk.length;
              if (expected === null && size >= 4) {
                expected = 4 + Buffer.concat(chunks).readUInt32BE(0);
              }
              if (expected !== null && size >= expected) {
                socket.off("data", onData);
                socket.pause();
                const job = Buffer.concat(chunks, size).subarray(4, expected);
                resolve(JSON.parse(job.toString("utf8")));
              }
            };
            socket.on("data", onData);
            socket.once("end", () => resolve(null));
            socket.once("error", reject);
          }),
        send: (text) =>
          new Promise((resolve, reject) => {
            socket.once("error", reject);
            socket.end(text, "utf8", resolve);
          }),
      };
    },
    onStrayError(handler) {
      globalThis.addEventListener("error", (event) => {
        event.preventDefault();
        handler(event.error);
      });
      globalThis.addEventListener("unhandledrejection", (event) => {
        event.preventDefault();
        handler(event.reason);
      });
    },
  };
}

let finished = false;

function convert(value, conversion) {
  if (conversion === "date" && typeof value === "string") {
    return new Date(value);
  }
  if (conversion === "bigint" && (typeof value === "number" || typeof value === "string")) {
    try {
      return BigInt(value);
    } catch {
      return value; // 1.5 is no bigint: main sees what was sent
    }
  }
  return value;
}

function positionalArgs(args, spec) {
  return spec.map(([name, conversion, nullIsUnset]) => {
    if (!Object.hasOwn(args, name)) {
      return undefined; // not given: the parameter's default applies
    }
    const value = args[name];
    if (value === FUNCTION_CALL_DEFAULT) {
      return undefined; // a default computed at run time (`= new Date()`)
    }
    if (value === null) {
      return nullIsUnset ? undefined : null;
    }
    return convert(value, conversion);
  });
}

function base64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function cleanString(text) {
  // JSON allows NUL in strings but Postgres cannot store it.
  return text.includes("\0") ? text.replaceAll("\0", "\uFFFD") : text;
}

// A JSON-ready copy of a result. JSON.stringify alone would throw on BigInt, turn Map and Set
// into {}, and report a cycle only through an engine-specific message; `path` holds the
// objects being copied, so a value shared by two branches is fine and only a real cycle fails.
function jsonable(value, path) {
  switch (typeof value) {
    case "string":
      return cleanString(value);
    case "number":
      return Number.isFinite(value) ? value : null;
    case "boolean":
      return value;
    case "bigint": {
      const number = Number(value);
      return Number.isSafeInteger(number) ? number : value.toString();
    }
    case "undefined":
    case "function":
    case "symbol":
      return undefined;
  }
  if (value === null) {
    return null;
  }
  if (path.has(value)) {
    throw new TypeError(
      "main returned a circular structure (an object that contains itself), which has no " +
        "JSON form: return a copy without the cycle",
    );
  }
  path.add(value);
  try {
    return jsonableObject(value, path);
  } finally {
    path.delete(value);
  }
}

function jsonableObject(value, path) {
  if (value instanceof Date) {
    return Number.isNaN(value.getTime()) ? null : value.toISOString();
  }
  if (value instanceof Uint8Array) {
    return base64(value); // like Base64 arguments (and Buffer, a Uint8Array)
  }
  if (value instanceof ArrayBuffer) {
    return base64(new Uint8Array(value));
  }
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return Array.from(value, (item) => jsonable(item, path));
  }
  if (Array.isArray(value) || value instanceof Set) {
    return Array.from(value, (item) => jsonable(item, path) ?? null);
  }
  if (value instanceof Map) {
    const out = {};
    for (const [key, item] of value) {
      const converted = jsonable(item, path);
      if (converted !== undefined) {
        out[cleanString(typeof key === "string" ? key : String(key))] = converted;
      }
    }
    return out;
  }
  if (typeof value.toJSON === "function") {
    return jsonable(value.toJSON(), path);
  }
  const out = {};
  if (value instanceof Error) {
    out.name = cleanString(String(value.name));
    out.message = cleanString(String(value.message));
  }
  for (const key of Object.keys(value)) {
    const converted = jsonable(value[key], path);
    if (converted !== undefined) {
      out[cleanString(key)] = converted;
    }
  }
  return out;
}

function resultText(result) {
  let copy;
  try {
    copy = jsonable(result, new Set());
  } catch (error) {
    if (error instanceof RangeError) {
      throw new RangeError("main returned a value nested too deeply to be written as JSON");
    }
    throw error;
  }
  return JSON.stringify(copy === undefined ? null : copy);
}

function errorObject(error) {
  if (error instanceof Error || (error !== null && typeof error === "object")) {
    // A thrown plain object (`throw { code: 42 }`) has no name: "Error", not "Object".
    const name = typeof error.name === "string" && error.name ? error.name : "Error";
    const message = error.message ?? safeString(error);
    const stack = typeof error.stack === "string" ? userStack(error.stack) : "";
    return { name: String(name), message: String(message), stack };
  }
  // `throw "boom"`: no stack to show.
  return { name: "Error", message: safeString(error), stack: "" };
}

function safeString(value) {
  try {
    return typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

// Frames of the runtimes' internals (Deno's `ext:`, Bun's `native:`).
const INTERNAL_FRAME = /^\s*at .*[( ](ext|native|node):[^)]*\)?$/;

function userStack(stack) {
  // The user's frames only: this wrapper's lines and the runtime's internals say nothing
  // about their error.
  return stack
    .split("\n")
    .filter(
      (line) => !WRAPPER_NAMES.some((name) => line.includes(name)) && !INTERNAL_FRAME.test(line),
    )
    .join("\n");
}

async function fail(error) {
  if (finished) {
    return;
  }
  finished = true;
  let text;
  try {
    const object = errorObject(error);
    text = JSON.stringify({
      error: {
        name: cleanString(object.name),
        message: cleanString(object.message),
        stack: cleanString(object.stack),
      },
    });
  } catch {
    text = JSON.stringify({ error: { name: "Error", message: "main failed", stack: "" } });
  }
  try {
    await writeResult(text);
  } catch (writeError) {
    // No result file: the worker reports the exit code and these lines. Never exit 0 here.
    console.error(`could not write ${resultName()}: ${writeError}`);
    console.error(text);
  }
  host.exit(1);
}

async function succeed(result) {
  if (finished) {
    return;
  }
  const text = resultText(result);
  finished = true;
  try {
    await writeResult(text);
  } catch (error) {
    // No result file: the worker reports the exit code and this line.
    console.error(`could not write ${resultName()}: ${error}`);
    host.exit(1);
  }
  // Exit now: handles the script left open (a database pool, a timer) would keep the job
  // running until its timeout.
  host.exit(0);
}

function writeResult(text) {
  return channel ? channel.send(text) : host.writeText(RESULT_PATH, text);
}

function resultName() {
  return channel ? "the result to the worker" : RESULT_PATH;
}

// A warm process's job: what a cold run finds in its directory and environment, set up from
// the job the worker sent. Its spec and arguments.
async function receiveJob() {
  const job = await channel.receive();
  if (job === null) {
    host.exit(0); // the worker dropped this process without a job
  }
  const payload = job.payload ?? {};
  // The runtime's variables over the job's, as in a cold run's environment.
  host.replaceEnv({ ...job.env, ...payload.env });
  for (const [name, text] of Object.entries(payload.files ?? {})) {
    await host.writeText(`${JOB_DIR}/${name}`, text);
  }
  for (const [name, target] of Object.entries(payload.links ?? {})) {
    await host.symlink(target, `${JOB_DIR}/${name}`);
  }
  return { spec: JSON.parse(payload.spec ?? "[]"), args: payload.args ?? {} };
}

async function run() {
  // An error thrown outside main's promise chain (a callback, a promise nobody awaited)
  // fails the job with that error instead of killing the process without a result.
  host.onStrayError(fail);
  const { spec, args } = WARM
    ? await receiveJob()
    : {
        spec: JSON.parse(host.argument ?? "[]"),
        args: JSON.parse(await host.readText(`${JOB_DIR}/args.json`)),
      };
  // Imported here, not statically, so that a failing import of the script (a missing package,
  // an error at its top level) is reported like any other error of the job.
  const jobUrl = `file://${JOB_DIR.split("/").map(encodeURIComponent).join("/")}`;
  const script = await import(`${jobUrl}/main.ts`);
  if (typeof script.main !== "function") {
    throw new TypeError("main.ts does not export a function named main");
  }
  await succeed(await script.main(...positionalArgs(args, spec)));
}

run().catch(fail);
