/**
 * The disk as Lua's own C library sees it: `io.open`, `io.lines`,
 * `os.remove`, `os.rename`, `os.tmpname`, `dofile`, `loadfile` and
 * `require` all reach files through these calls, so Deno's permission
 * flags apply to them exactly as to SolVM's own file functions.
 *
 * @module
 */
import {
  ERRNO,
  errnoOfSystemError,
  type LuaSystem,
  O_APPEND,
  O_CREAT,
  O_EXCL,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
} from "../runtime/lua.ts";
import { accessReason, checkAccess, checkTree, isPermissionError } from "./_permissions.ts";

// Reasons of the file accesses refused since the last takeDenials(): the C library
// can only say "Permission denied", so the io/os wrappers (host/files.ts) add them.
let denials: string[] = [];

/**
 * The reasons of file accesses refused since the last call, each naming the
 * flag that grants it.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { takeDenials } from "./filesystem.ts";
 * ok(Array.isArray(takeDenials()));
 * ```
 */
export function takeDenials(): string[] {
  const taken = denials;
  denials = [];
  return taken;
}

/** The errno for a failed Deno file call. */
export function errnoOf(e: unknown): number {
  const known = errnoOfSystemError(e);
  if (known !== undefined) return known;
  if (e instanceof Deno.errors.NotFound) return ERRNO.ENOENT;
  if (isPermissionError(e) || e instanceof Deno.errors.PermissionDenied) return ERRNO.EACCES;
  if (e instanceof Deno.errors.AlreadyExists) return ERRNO.EEXIST;
  if (e instanceof Deno.errors.IsADirectory) return ERRNO.EISDIR;
  if (e instanceof Deno.errors.NotADirectory) return ERRNO.ENOTDIR;
  if (e instanceof Deno.errors.BadResource) return ERRNO.EBADF;
  if (e instanceof Error && /not empty/i.test(e.message)) return ERRNO.ENOTEMPTY;
  return ERRNO.EIO;
}

/**
 * A clear reason for a failed file operation on `path`, with the flag that
 * grants access when permission was denied.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { fileErrorReason } from "./filesystem.ts";
 * ok(fileErrorReason(new Deno.errors.NotFound("x"), "read", "a.txt") === "no such file or directory");
 * ```
 */
export function fileErrorReason(e: unknown, access: "read" | "write", path: string): string {
  if (e instanceof Deno.errors.NotFound) return "no such file or directory";
  if (isPermissionError(e)) return accessReason(e, access, path);
  if (e instanceof Deno.errors.IsADirectory) return "is a directory";
  if (e instanceof Deno.errors.NotADirectory) return "not a directory";
  if (e instanceof Deno.errors.AlreadyExists) return "already exists";
  const message = e instanceof Error ? e.message : String(e);
  // Deno's text for the system's error goes on "(os error 13): open 'path'", naming the path a second time.
  const system = /^(.+?) \(os error \d+\)/.exec(message)?.[1];
  return system ? system[0].toLowerCase() + system.slice(1) : message;
}

const SEEK_MODES = [Deno.SeekMode.Start, Deno.SeekMode.Current, Deno.SeekMode.End];

/**
 * Files on the real disk through Deno's synchronous file API. Descriptors
 * 0-2 are the engine's; this serves 3 and up.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { denoFileSystem } from "./filesystem.ts";
 * const files = denoFileSystem();
 * ok(files.open("/nonexistent/file", 0, 0) < 0);
 * ```
 */
export function denoFileSystem(): LuaSystem {
  // Descriptors share an open file after dup3, so each file counts its descriptors.
  const open = new Map<number, { file: Deno.FsFile; users: number }>();
  let next = 3;
  const attempt = (action: () => number, access?: "read" | "write", path?: string) => {
    try {
      return action();
    } catch (e) {
      if (access && path && isPermissionError(e)) denials.push(accessReason(e, access, path));
      return -errnoOf(e);
    }
  };
  const file = (fd: number) => {
    const entry = open.get(fd);
    if (!entry) throw new Deno.errors.BadResource(`bad file descriptor ${fd}`);
    return entry.file;
  };
  const release = (fd: number) => {
    const entry = open.get(fd);
    if (!entry) throw new Deno.errors.BadResource(`bad file descriptor ${fd}`);
    open.delete(fd);
    if (--entry.users === 0) entry.file.close();
  };
  return {
    open: (path, flags, mode) =>
      attempt(
        () => {
          const access = flags & 3;
          if (access !== O_WRONLY) checkAccess("read", path);
          if (access !== 0 || (flags & (O_CREAT | O_TRUNC | O_APPEND)) !== 0) checkAccess("write", path);
          const f = Deno.openSync(path, {
            read: access !== O_WRONLY,
            write: access === O_WRONLY || access === O_RDWR,
            append: (flags & O_APPEND) !== 0,
            create: (flags & O_CREAT) !== 0,
            createNew: (flags & O_CREAT) !== 0 && (flags & O_EXCL) !== 0,
            truncate: (flags & O_TRUNC) !== 0,
            mode: mode || undefined,
          });
          while (open.has(next)) next++;
          open.set(next, { file: f, users: 1 });
          return next++;
        },
        (flags & 3) === 0 ? "read" : "write",
        path,
      ),
    read: (fd, into) => attempt(() => file(fd).readSync(into) ?? 0),
    write: (fd, bytes) => attempt(() => file(fd).writeSync(bytes)),
    seek: (fd, offset, whence) => attempt(() => file(fd).seekSync(offset, SEEK_MODES[whence] ?? Deno.SeekMode.Start)),
    close: (fd) =>
      attempt(() => {
        release(fd);
        if (fd < next) next = fd;
        return 0;
      }),
    duplicate: (oldFd, newFd) =>
      attempt(() => {
        const entry = open.get(oldFd);
        if (!entry || newFd < 3) throw new Deno.errors.BadResource(`bad file descriptor ${oldFd}`);
        if (oldFd === newFd) return newFd;
        if (open.has(newFd)) release(newFd);
        entry.users++;
        open.set(newFd, entry);
        return newFd;
      }),
    remove: (path, _directory) =>
      attempt(
        () => {
          checkAccess("write", path);
          // C's remove() unlinks, then removes an empty folder; Deno's removeSync does both (and needs no read).
          Deno.removeSync(path);
          return 0;
        },
        "write",
        path,
      ),
    rename: (from, to) =>
      attempt(
        () => {
          // Both trees move or are replaced, with every denied entry inside them: each must be free to read and write.
          checkTree("read", from);
          checkTree("write", from);
          checkTree("write", to);
          checkTree("read", to);
          Deno.renameSync(from, to);
          return 0;
        },
        "write",
        from,
      ),
    readlink: (path, into) =>
      attempt(() => {
        checkAccess("read", path);
        if (!Deno.lstatSync(path).isSymlink) return -ERRNO.EINVAL;
        const target = new TextEncoder().encode(Deno.readLinkSync(path));
        into.set(target.subarray(0, into.length));
        return Math.min(target.length, into.length);
      }),
    environment: () => {
      try {
        return Object.entries(Deno.env.toObject()).map(([k, v]) => `${k}=${v}`);
      } catch {
        return [];
      }
    },
    closeAll: () => {
      for (const fd of [...open.keys()]) release(fd);
    },
  };
}
