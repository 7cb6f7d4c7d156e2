-- JSON both ways: arrays and objects, integers and floats, unicode, null.
local doc = json_decode('{"name": "SolVM", "tags": ["lua", "deno"], "version": 1, "ratio": 0.5, "none": null}')
print(doc.name, #doc.tags, math.type(doc.version), math.type(doc.ratio), doc.none == json_null)

print(json_encode({ greeting = "héllo ✓", list = { 1, 2.5, true }, empty = {} }))
print(json_encode({ nested = { a = { b = { c = 1 } } } }, 2))
