/**
 * End to end: the chat example (examples/chat/) in a real browser. Starts
 * the server through the CLI, launches headless Chromium and drives two tabs
 * over the Chrome DevTools Protocol with Deno's own WebSocket client.
 *
 * Needs /usr/bin/chromium (Debian's `chromium` package; .ci/run installs it).
 * Without it the test is ignored, except under CI=true, where it fails. The
 * test of a client that stops reading uses Deno's clients and needs no browser.
 * Set CHAT_SCREENSHOT=/tmp/chat.png to save a screenshot of tab 2.
 *
 * @module
 */
import { deepStrictEqual, match, strictEqual } from "node:assert";
import { sleep, within, WS_UPGRADE } from "./_helpers.ts";

const CHROMIUM = "/usr/bin/chromium";
const ROOT = new URL("..", import.meta.url).pathname;
/** The limit for every single wait. */
const WAIT_MS = 20_000;

const haveChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
const inCi = Deno.env.get("CI") === "true";

/** Calls `check` until it returns a value other than undefined; fails after `ms` with `what` and the last value seen. */
async function until<T>(what: string, check: () => Promise<T | undefined>, ms = WAIT_MS): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(50);
  }
}

/** A child's output stream, read to the end in the background (so the child never blocks on a full pipe). */
class Output {
  text = "";
  ended = false;
  readonly #reader: ReadableStreamDefaultReader<string>;
  readonly #pumped: Promise<void>;
  #wake = () => {};

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    this.#pumped = this.#pump();
  }

  async #pump(): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await this.#reader.read();
        if (done) break;
        this.text += value;
        this.#wake();
      }
    } catch {
      // cancelled
    } finally {
      this.ended = true;
      this.#wake();
    }
  }

  /** The first match of `pattern`, waiting for more output; fails if the stream ends or `ms` pass first. */
  async match(pattern: RegExp, what: string, ms = WAIT_MS): Promise<RegExpMatchArray> {
    const deadline = performance.now() + ms;
    for (;;) {
      const found = this.text.match(pattern);
      if (found) return found;
      if (this.ended) throw new Error(`${what}: the output ended without it:\n${this.text}`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms: ${what}; output so far:\n${this.text}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => (clearTimeout(timer), resolve());
      });
    }
  }

  /** Stops reading (a grandchild may hold the pipe open) and waits for the reader to finish. */
  async close(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
    await this.#pumped;
  }
}

/** A child process with its stdout and stderr read in the background. */
class Child {
  readonly process: Deno.ChildProcess;
  readonly stdout: Output;
  readonly stderr: Output;

  constructor(command: string, args: string[]) {
    this.process = new Deno.Command(command, {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.stdout = new Output(this.process.stdout);
    this.stderr = new Output(this.process.stderr);
  }

  /** Ends the process by its id: SIGTERM, then SIGKILL if it is still there after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    const signal = (name: Deno.Signal) => {
      try {
        this.process.kill(name);
      } catch {
        // already ended
      }
    };
    signal("SIGTERM");
    try {
      await within(this.process.status, graceMs, "process exit");
    } catch {
      signal("SIGKILL");
      await this.process.status;
    }
    await Promise.all([this.stdout.close(), this.stderr.close()]);
  }
}

// deno-lint-ignore no-explicit-any
type Json = any;

/** A Chrome DevTools Protocol connection to the browser; page sessions are flattened onto it (sessionId). */
class Cdp {
  readonly #socket: WebSocket;
  readonly #pending = new Map<number, { resolve(v: Json): void; reject(e: Error): void }>();
  readonly #closed: Promise<void>;
  #next = 0;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    this.#closed = new Promise((resolve) => socket.addEventListener("close", () => resolve()));
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      const call = this.#pending.get(message.id);
      if (!call) return; // an event: none is needed here
      this.#pending.delete(message.id);
      if (message.error) call.reject(new Error(`CDP: ${message.error.message} (${message.error.code})`));
      else call.resolve(message.result);
    };
    this.#closed.then(() => {
      for (const call of this.#pending.values()) call.reject(new Error("CDP: the connection closed"));
      this.#pending.clear();
    });
  }

  static async connect(url: string): Promise<Cdp> {
    const socket = new WebSocket(url);
    try {
      await within(
        new Promise((resolve, reject) => {
          socket.onopen = resolve;
          socket.onerror = () => reject(new Error(`cannot connect to ${url}`));
        }),
        WAIT_MS,
        `connecting to DevTools at ${url}`,
      );
    } catch (e) {
      socket.close();
      throw e;
    }
    return new Cdp(socket);
  }

  /** Sends one command and waits for its result. */
  call(method: string, params: Json = {}, sessionId?: string): Promise<Json> {
    const id = ++this.#next;
    const result = new Promise<Json>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    this.#socket.send(JSON.stringify({ id, method, params, sessionId }));
    return within(result, WAIT_MS, `CDP ${method}`);
  }

  async close(): Promise<void> {
    if (this.#socket.readyState !== WebSocket.CLOSED) this.#socket.close();
    await within(this.#closed, 5_000, "closing the DevTools connection");
  }
}

/** One browser tab, attached over the browser's CDP connection. */
class Tab {
  constructor(readonly cdp: Cdp, readonly targetId: string, readonly sessionId: string, readonly name: string) {}

  static async open(cdp: Cdp, url: string, name: string): Promise<Tab> {
    const { targetId } = await cdp.call("Target.createTarget", { url, newWindow: true });
    const { sessionId } = await cdp.call("Target.attachToTarget", { targetId, flatten: true });
    return new Tab(cdp, targetId, sessionId, name);
  }

  /** The value of a JavaScript expression in the page. */
  async eval(expression: string): Promise<Json> {
    const { result, exceptionDetails } = await this.cdp.call(
      "Runtime.evaluate",
      { expression, returnByValue: true, awaitPromise: true },
      this.sessionId,
    );
    if (exceptionDetails) {
      throw new Error(
        `${this.name}: ${expression} threw ${exceptionDetails.exception?.description ?? exceptionDetails.text}`,
      );
    }
    return result.value;
  }

  /** The texts of the #messages items (a page still loading has none). */
  messages(): Promise<string[]> {
    return this.eval(`[...document.querySelectorAll("#messages li")].map((li) => li.textContent)`);
  }

  /** Waits until #messages holds `text`, showing what it did hold on failure. */
  async waitForMessage(text: string): Promise<void> {
    let seen: string[] = [];
    try {
      await until(`${this.name} shows ${JSON.stringify(text)}`, async () => {
        seen = await this.messages();
        return seen.includes(text) || undefined;
      });
    } catch (e) {
      throw new Error(`${(e as Error).message}; its messages: ${JSON.stringify(seen)}`);
    }
  }

  /** Types `text` into #input and clicks #send, as a user would. */
  async say(text: string): Promise<void> {
    await this.eval(`{
      const input = document.querySelector("#input");
      input.value = ${JSON.stringify(text)};
      document.querySelector("#send").click();
    }`);
  }
}

const name = haveChromium || inCi
  ? "chat example: two Chromium tabs exchange messages through the Lua WebSocket server"
  : "chat example in Chromium (skipped: chromium not installed)";

Deno.test({ name, ignore: !haveChromium && !inCi }, async () => {
  if (!haveChromium) throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium package (see .ci/run)`);
  let server: Child | undefined;
  let browser: Child | undefined;
  let cdp: Cdp | undefined;
  const profile = await Deno.makeTempDir({ prefix: "solvm-chat-chromium-" });
  try {
    server = new Child(Deno.execPath(), ["run", "-A", "main.ts", "--timeout", "0", "examples/chat/chat.lua", "0"]);
    const [, base] = await server.stdout.match(/^chat listening on (http:\/\/127\.0\.0\.1:\d+\/)\n/, "the chat server");
    strictEqual(server.stdout.text, `chat listening on ${base}\n`, "exactly one line when listening");

    const page = await within(fetch(base), WAIT_MS, `GET ${base}`);
    strictEqual(page.status, 200);
    match(page.headers.get("content-type") ?? "", /^text\/html/);
    match(await page.text(), /id="messages"/);

    browser = new Child(CHROMIUM, [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0",
      "about:blank",
    ]);
    const [, devtools] = await browser.stderr.match(/DevTools listening on (ws:\/\/\S+)\n/, "Chromium's DevTools URL");
    cdp = await Cdp.connect(devtools);

    const one = await Tab.open(cdp, base, "tab 1");
    const two = await Tab.open(cdp, base, "tab 2");
    for (const tab of [one, two]) {
      await until(`${tab.name} connects to /ws`, async () => {
        const state = await tab.eval(`document.body?.dataset.state`);
        if (state === "closed") throw new Error(`${tab.name}: the WebSocket closed`);
        return state === "open" || undefined;
      });
    }
    // The server announces each join after registering the connection, so once
    // both tabs have seen the second join, a broadcast reaches both.
    await one.waitForMessage("* someone joined (2 online)");
    await two.waitForMessage("* someone joined (2 online)");

    // Markup in a message must show as text, not become elements.
    const hello = "hello from <b>tab 1</b> & ✓";
    await one.say(hello);
    await two.waitForMessage(hello);
    await one.waitForMessage(hello);
    strictEqual(await two.eval(`document.querySelector("#messages b")`), null, "message text must not become markup");
    strictEqual(await one.eval(`document.querySelector("#input").value`), "", "the input is cleared after sending");

    const reply = "hi tab 1, tab 2 here";
    await two.say(reply);
    await one.waitForMessage(reply);
    await two.waitForMessage(reply);
    // Blank input sends nothing: the next message from the same tab (same
    // connection, so in order) directly follows the reply.
    await one.say("   ");
    const last = "bye";
    await one.say(last);
    await two.waitForMessage(last);
    await one.waitForMessage(last);
    // Either tab may have joined first, so only the chat itself has a fixed order.
    for (const tab of [one, two]) deepStrictEqual((await tab.messages()).slice(-3), [hello, reply, last], tab.name);

    const screenshot = Deno.env.get("CHAT_SCREENSHOT");
    if (screenshot) {
      const { data } = await cdp.call("Page.captureScreenshot", { format: "png" }, two.sessionId);
      await Deno.writeFile(screenshot, Uint8Array.from(atob(data), (c) => c.charCodeAt(0)));
    }

    // Closing tab 2 tells tab 1 that someone left.
    await cdp.call("Target.closeTarget", { targetId: two.targetId });
    await one.waitForMessage("* someone left (1 online)");
  } catch (e) {
    // The server's errors usually explain a browser-side timeout.
    if (server?.stderr.text) (e as Error).message += `\nchat server stderr:\n${server.stderr.text}`;
    throw e;
  } finally {
    await cdp?.close().catch(() => {});
    await browser?.stop();
    await server?.stop();
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
});

Deno.test("chat example: a client that stops reading holds up no one else", async () => {
  const server = new Child(Deno.execPath(), ["run", "-A", "main.ts", "--timeout", "0", "examples/chat/chat.lua", "0"]);
  const sockets: WebSocket[] = [];
  let stalled: Deno.TcpConn | undefined;
  try {
    const [, port] = await server.stdout.match(/^chat listening on http:\/\/127\.0\.0\.1:(\d+)\/\n/, "the chat server");
    const open = async (counted?: { n: number }) => {
      const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`);
      sockets.push(socket);
      socket.onmessage = (e) => void (counted && String(e.data).startsWith("msg") && counted.n++);
      await within(new Promise((resolve) => socket.onopen = resolve), WAIT_MS, "a chat client to connect");
      return socket;
    };
    // A client that shakes hands, then reads nothing more.
    stalled = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
    await stalled.write(new TextEncoder().encode(WS_UPGRADE));
    const head = new Uint8Array(1024);
    match(new TextDecoder().decode(head.subarray(0, (await stalled.read(head)) ?? 0)), /^HTTP\/1\.1 101 /);
    const listeners = [{ n: 0 }, { n: 0 }];
    for (const counted of listeners) await open(counted);
    // 20 MB: far more than the stalled client's socket buffers and the 1 MiB ws.send lets queue up.
    const talker = await open();
    const total = 200;
    for (let i = 0; i < total; i++) talker.send(`msg ${i} ${"x".repeat(100_000)}`);
    await until(
      "every listener to get every message",
      () => Promise.resolve(listeners.every((l) => l.n === total) || undefined),
    ).catch((e) => {
      throw new Error(`${e.message}; they got ${listeners.map((l) => l.n).join(", ")} of ${total}`);
    });
  } finally {
    stalled?.close();
    for (const socket of sockets) socket.close();
    await server.stop();
  }
});
