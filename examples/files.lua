-- Files on disk: SolVM's read_file / write_file / list_dir and Lua's own io
-- library. The demo writes a few files next to this script under a unique
-- prefix and removes them at the end, even if something fails on the way.
local here = arg[0]:match("^(.*)/") or "."
local unique = os.tmpname()
os.remove(unique) -- only its name is wanted
local prefix = "files-demo-" .. unique:match("[^/]+$") .. "-"
local made = {}

local function path(name)
  local p = here .. "/" .. prefix .. name
  made[#made + 1] = p
  return p
end

local function demo()
  -- Whole files as strings: write, append, read back (binary-safe).
  local notes = path("notes.txt")
  write_file(notes, "first line\n")
  write_file(notes, "second line\n", "a")
  io.write(read_file(notes))
  local bin = path("bytes.bin")
  write_file(bin, string.char(0, 1, 2, 255))
  print("bytes:", read_file(bin):byte(1, -1))

  -- Streams: io.open, chained writes, io.lines.
  local csv = path("scores.csv")
  local f = assert(io.open(csv, "w"))
  f:write("name,score\n"):write("ada,90\n", "linus,85\n")
  f:close()
  local total = 0
  for line in io.lines(csv) do
    local score = line:match(",(%d+)$")
    if score then total = total + tonumber(score) end
  end
  print("total score:", total)

  -- Folder listings come sorted by name.
  for _, e in ipairs(list_dir(here)) do
    if e.name:sub(1, #prefix) == prefix then
      print(e.name:sub(#prefix + 1), e.is_dir, e.size .. " bytes", e.mode:sub(1, 3), math.type(e.mod_time))
    end
  end

  -- Failures name the path and the cause.
  print(pcall(read_file, here .. "/no-such-file.txt"))
  local missing, message = io.open(here .. "/no-such-file.txt")
  print(missing, message)
end

local ok, err = pcall(demo)
for _, p in ipairs(made) do os.remove(p) end
if not ok then error(err, 0) end
