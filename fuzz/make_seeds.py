#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets, fuzz/corpus/<target>/seed-*, from the test suite and the examples.

Frames come from the string literals of tests/integration, tests/core and tests/transport that hold an "action" or a
"stream" (as written, fragments of concatenated strings included), configurations from examples/ and the config
tests' helpers, handshakes and tokens from the auth and handshake tests (tokens minted here with the targets'
secret), events in the form EncodeEvent writes them. A seed's name is a hash of its bytes, so rerunning the script
changes nothing unless the tests changed. Other files in the corpus directories (inputs of crashes that were found,
named after what they found) are left alone. Run from anywhere: python3 fuzz/make_seeds.py
"""

import base64
import glob
import hashlib
import hmac
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")

JWT_SECRET = b"fuzz-jwt-secret-0123456789"  # the targets' secret (handshake, jwt)
ALICE_TOKEN = "dev-token-alice-0123"
BOB_TOKEN = "dev-token-bob-4567"
NOW = 1700000000  # the jwt target's clock


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def unescape_cpp(literal):
    """The bytes of an ordinary C++ string literal's body (simple escapes, \\x and octal)."""
    out = bytearray()
    i = 0
    data = literal.encode("utf-8")
    simple = {ord("n"): 10, ord("t"): 9, ord("r"): 13, ord("0"): 0, ord("\\"): 92, ord('"'): 34, ord("'"): 39}
    while i < len(data):
        c = data[i]
        if c == 92 and i + 1 < len(data):
            n = data[i + 1]
            if n == ord("x"):
                j = i + 2
                while j < len(data) and chr(data[j]) in "0123456789abcdefABCDEF":
                    j += 1
                out.append(int(data[i + 2:j], 16) & 0xFF)
                i = j
                continue
            if n in simple:
                out.append(simple[n])
                i += 2
                continue
            out.append(n)
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


def literals(source):
    """Every raw and ordinary string literal of a C++ source, as bytes, in order."""
    pattern = re.compile(r'R"\((.*?)\)"|"((?:[^"\\\n]|\\.)*)"', re.S)
    for m in pattern.finditer(source):
        if m.group(1) is not None:
            yield m.group(1).encode("utf-8")
        else:
            yield unescape_cpp(m.group(2))


def test_frames():
    frames = set()
    paths = [p for d in ("integration", "core", "transport") for p in glob.glob(os.path.join(ROOT, "tests", d, "*.cpp"))]
    for path in sorted(paths):
        with open(path, encoding="utf-8") as f:
            source = f.read()
        for text in literals(source):
            if text.lstrip().startswith(b"{") and (b'"action"' in text or b'"stream"' in text):
                frames.add(text)
    return sorted(frames)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(payload, secret=JWT_SECRET, alg="HS256"):
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(payload.encode() if isinstance(payload, str) else payload)
    signing = (header + "." + body).encode()
    digests = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    signature = b64url(hmac.new(secret, signing, digests[alg]).digest()) if alg in digests else ""
    return header + "." + body + "." + signature


def write(target, seeds):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.startswith("seed-"):
            os.remove(os.path.join(directory, name))
    unique = sorted(set(seeds))
    for seed in unique:
        with open(os.path.join(directory, "seed-" + hashlib.sha1(seed).hexdigest()[:16]), "wb") as f:
            f.write(seed)
    print(f"{target}: {len(unique)} seeds")


# --- frame ---------------------------------------------------------------------------------------------------------

# Frames for the fuzz target's own routes (fuzz/frame_fuzzer.cpp, kConfig), beside those of the tests.
OWN_FRAMES = [
    (0, '{"action":"list","request_id":1,"filter":{"author":"alice","likes__gte":1,"id__in":[1,3]},"ordering":"-likes"}'),
    (0, '{"action":"list","request_id":2,"limit":2,"offset":1,"filter":{"published__isnull":false}}'),
    (0, '{"action":"list","filter":{"title__icontains":"IR","score__lt":2.5,"public":true,"state":"live"}}'),
    (0, '{"action":"create","request_id":"c","data":{"title":"New","likes":5,"score":0.5,"public":true,'
        '"state":"live","meta":{"a":[1,{"b":null}]},"published":"2024-05-01 12:30","secret":"s"}}'),
    (0, '{"action":"update","request_id":3,"pk":2,"data":{"title":"Upd","meta":[1,2],"published":null}}'),
    (0, '{"action":"patch","request_id":4,"pk":"1","data":{"likes":2000000,"state":"gone","score":"x"}}'),
    (0, '{"action":"delete","request_id":5,"pk":3}'),
    (0, '{"action":"retrieve","request_id":6,"pk":4}'),
    (0, '{"action":"subscribe_instance","request_id":"s","pk":1,"since":0}'),
    (0, '{"action":"unsubscribe_instance","request_id":"s","pk":1}'),
    (0, '{"action":"subscribe_list","request_id":"l","filter":{"author":"alice"},"snapshot":true}'),
    (0, '{"action":"subscribe_group","request_id":"g","author":"bob","since":2}'),
    (0, '{"action":"unsubscribe_group","request_id":"g"}'),
    (0, '{"action":"subscribe_list","request_id":"x","filter":{"secret__startswith":"h"}}'),
    (1, '{"action":"list","request_id":7,"limit":1,"offset":0,"ordering":"-likes","filter":{"author":"alice"}}'),
    (1, '{"action":"list_cancel","request_id":8}'),
    (1, '{"action":"retrieve","request_id":9,"title":"First"}'),
    (1, '{"action":"patch","title":"Third","data":{"likes":1}}'),
    (2, '{"action":"create","request_id":1,"data":{"slug":"new","label":"New"}}'),
    (2 | 8, '{"action":"create","request_id":1,"data":{"slug":"new","label":"News"}}'),
    (2 | 8, '{"action":"update","slug":"c++","pk":"c++","data":{"label":"Cpp"}}'),
    (2, '{"action":"subscribe_instance","request_id":2,"pk":"ete","since":1}'),
    (2, '{"action":"list","filter":{"slug__in":["news","ete"],"label__startswith":"N"},"ordering":"-label"}'),
    (3 | 8, '{"action":"list","request_id":1,"filter":{"likes__gt":0}}'),
    (3 | 8, '{"action":"patch","pk":1,"data":{"owner_id":2,"title":"mine"}}'),
    (3, '{"action":"retrieve","pk":1}'),
    (3 | 8, '{"action":"subscribe_instance","pk":2,"request_id":"o","since":1}'),
    (4, '{"stream":"posts","payload":{"action":"list","request_id":1,"filter":{"author":"bob"}}}'),
    (4 | 8, '{"stream":"owned","payload":{"action":"delete","pk":4,"request_id":2}}'),
    (4, '{"stream":"api","payload":{"action":"retrieve","route":"posts/1/","request_id":3}}'),
    (4, '{"stream":"tags","payload":{"action":"subscribe_instance","pk":"news","request_id":4}}'),
    (4 | 16, '{"stream":"posts","payload":{"action":"list"}}'),
    (4, '{"stream":"nope","payload":{"action":"list","request_id":5}}'),
    (5, '{"action":"retrieve","route":"posts/2/","request_id":1}'),
    (5, '{"action":"partial_update","route":"posts/1/","data":{"title":"R"}}'),
    (5, '{"action":"list","route":"posts/","limit":1,"offset":1,"filter":{"author":"alice"},"ordering":"-id"}'),
    (5, '{"action":"create","route":"posts/","data":{"title":"Routed","meta":"{}"}}'),
    (5, '{"action":"retrieve","route":"tags/c++/"}'),
    (5, '{"action":"remove","route":"twice/3/3"}'),
    (5, '{"action":"remove","route":"posts/99999999999999999999/"}'),
]


# Several frames on one connection (separated by 0xFF), so that the changes of one are pushed to the subscriptions
# of another; selector bit 5 sends the changes as bus payloads, bit 6 runs the multiplexer's writes on a write pool,
# bit 7 (with 6) on a batch writer.
SEQUENCES = [
    (0, ['{"action":"subscribe_instance","request_id":"s","pk":1}', '{"action":"patch","pk":1,"data":{"likes":4}}',
         '{"action":"delete","pk":1}']),
    (0 | 32, ['{"action":"subscribe_list","request_id":"l","filter":{"author":"alice","likes__gte":1}}',
              '{"action":"create","data":{"title":"n","author":"alice","likes":2}}',
              '{"action":"patch","pk":3,"data":{"likes":5}}', '{"action":"patch","pk":1,"data":{"author":"bob"}}']),
    (0, ['{"action":"subscribe_group","request_id":"g","author":"alice"}',
         '{"action":"update","pk":3,"data":{"title":"T","author":"bob"}}', '{"action":"unsubscribe_group"}']),
    (2 | 8, ['{"action":"subscribe_instance","request_id":1,"pk":"news"}',
             '{"action":"patch","pk":"news","data":{"label":"Newer"}}', '{"action":"delete","pk":"news"}']),
    (3 | 8 | 32, ['{"action":"subscribe_instance","request_id":"o","pk":1}',
                  '{"action":"patch","pk":1,"data":{"owner_id":2}}', '{"action":"retrieve","pk":1}']),
    (4 | 8, ['{"stream":"posts","payload":{"action":"subscribe_instance","pk":2,"request_id":"a"}}',
             '{"stream":"api","payload":{"action":"partial_update","route":"posts/2/","data":{"title":"via api"}}}',
             '{"stream":"owned","payload":{"action":"delete","pk":2}}']),
    (1, ['{"action":"create","data":{"title":"p","public":true}}', '{"action":"list","request_id":1,"limit":1}',
         '{"action":"list_cancel"}']),
    # Selector bit 64: the streams' writes on a write pool, the frames back to back (they wait behind the write).
    (4 | 64, ['{"stream":"posts","payload":{"action":"patch","pk":1,"data":{"likes":9},"request_id":1}}',
              '{"stream":"posts","payload":{"action":"retrieve","pk":1,"request_id":2}}',
              '{"stream":"posts","payload":{"action":"delete","pk":2,"request_id":3}}',
              '{"stream":"posts","payload":{"action":"list","request_id":4}}']),
    (4 | 8 | 64, ['{"stream":"posts","payload":{"action":"subscribe_instance","pk":3,"request_id":"s"}}',
                  '{"stream":"tags","payload":{"action":"create","data":{"slug":"x","label":"X"}}}',
                  '{"stream":"posts","payload":{"action":"update","pk":3,"data":{"title":"U"}}}',
                  'not json']),
    # Selector bits 64 and 128: the writes run whole on a batch writer, the frames back to back.
    (4 | 64 | 128, ['{"stream":"posts","payload":{"action":"patch","pk":1,"data":{"likes":7},"request_id":1}}',
                    '{"stream":"posts","payload":{"action":"patch","pk":1,"data":{"likes":"many"},"request_id":2}}',
                    '{"stream":"posts","payload":{"action":"retrieve","pk":1,"request_id":3}}',
                    '{"stream":"posts","payload":{"action":"create","data":{"title":"b"},"request_id":4}}']),
    (4 | 8 | 64 | 128, ['{"stream":"posts","payload":{"action":"subscribe_instance","pk":1,"request_id":"s"}}',
                        '{"stream":"owned","payload":{"action":"patch","pk":1,"data":{"title":"o"}}}',
                        '{"stream":"tags","payload":{"action":"delete","pk":"news","request_id":"d"}}',
                        '{"stream":"posts","payload":{"action":"delete","pk":1,"request_id":"x"}}']),
]


def frame_seeds():
    seeds = []
    for i, frame in enumerate(test_frames()):
        if b'"stream"' in frame:
            selector = 4 | (8 if i % 2 else 0)
        elif b'"route"' in frame:
            selector = 5 | (8 if i % 2 else 0)
        elif i % 3 < 2:
            selector = 0 | (8 if i % 3 else 0)  # the route with every mixin, anonymous or alice
        else:
            selector = (1 + (i // 3) % 3) | (8 if i % 2 else 0)  # the streamed, tags and owned routes
        seeds.append(bytes([selector]) + frame)
    seeds += [bytes([s]) + f.encode() for s, f in OWN_FRAMES]
    seeds += [bytes([s]) + b"\xff".join(f.encode() for f in frames) for s, frames in SEQUENCES]
    return seeds


# --- json ----------------------------------------------------------------------------------------------------------

def json_seeds():
    texts = [f for f in test_frames()]
    texts += [t for t in literals(read("tests/core/json_input_test.cpp")) if t.strip()[:1] in (b"{", b"[", b'"')]
    texts += [b'[1, -0, 1e400, -1e-400, 18446744073709551616, -9223372036854775809, 1.7976931348623157e308, 5e-324]',
              b'{"a":"\\ud83d\\ude00","b":"\\udc00","c":"\\ud800x","d":"\xed\xa0\x80","e":"\xf4\x90\x80\x80"}',
              b'[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]',
              b'{"k" : [true , false , null , "\\u0000\\n\\"\\\\\\/"] , "" : {}}',
              b'/* c */ {"a": // x\n 1} // end']
    seeds = []
    for text in texts:
        seeds.append(bytes([0x3F]) + text)  # max_depth 64 (the default), no comments
    for text in texts[-3:]:
        seeds.append(bytes([0x40 | 0x07]) + text)  # comments, depth 8
        seeds.append(bytes([0x80]) + text)  # depth 1000
    for raw in (b"\xc0\x80", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf0\x90\x80\x80", b"\xf4\x90\x80\x80", b"\xff\xfe",
                b"ab\xe2\x82", b"\xe2\x82\xac\xf0\x9f\x98\x80"):
        seeds.append(bytes([0x3F]) + b'"' + raw + b'"')
    return seeds


# --- config --------------------------------------------------------------------------------------------------------

def config_seeds():
    seeds = [read("examples/blog/config.json").encode()]
    frame_source = read("fuzz/frame_fuzzer.cpp")
    seeds.append(re.search(r'kConfig = R"\((.*?)\)";', frame_source, re.S).group(1).encode())
    source = read("tests/config/config_test.cpp")
    base_top = '{"database": "t.db", '
    models = '"models": {"posts": {"fields": {"title": {"type": "text"}, "author": {"type": "text", "blank": true}}}},'
    two_models = ('{"database": "t.db", "models": {"posts": {"fields": {"title": {"type": "text"}}}, "comments": '
                  '{"fields": {"text": {"type": "text"}}}}, "routes": {"/ws/posts/": {"model": "posts", "mixins": '
                  '["list"]}, "/ws/comments/": {"model": "comments", "mixins": ["list"]}, ')
    raw = r'(?:R"\((?:.*?)\)"\s*(?:\+\s*)?)+'
    for m in re.finditer(r'\bWith\((' + raw + r')(?:,\s*(' + raw + r'))?\)', source, re.S):
        route = b"".join(literals(m.group(1))).decode()
        extra = b"".join(literals(m.group(2))).decode() if m.group(2) else ""
        seeds.append((base_top + extra + models + ' "routes": {"/ws/posts/": ' + route + "}}").encode())
    for m in re.finditer(r'\bWithRoutes\((' + raw + r')\)', source, re.S):
        seeds.append((two_models + b"".join(literals(m.group(1))).decode() + "}}").encode())
    for m in re.finditer(r'\b(?:Error|ParseConfig)\((' + raw + r')\)', source, re.S):
        seeds.append(b"".join(literals(m.group(1))))
    seeds.append(('{"database": "a.db", "auth": {"tokens": {"' + ALICE_TOKEN + '": {"user": "alice", "id": 1, '
                  '"groups": ["editors"]}}, "jwt": {"secret": "s", "leeway_s": 30}, "anonymous": "refuse", '
                  '"invalid_token": "refuse", "cookie": "", "query_param": "t", "bearer_header": false}, '
                  '"rate_limit": {"per_second": 5, "burst": 10, "close_after": 3}, "bus": {"redis": '
                  '"redis://127.0.0.1:6379/0", "shards": 4, "channel_prefix": "p"}, "max_json_depth": 8, '
                  '"models": {"p": {"fields": {"o": {"type": "integer", "null": true}, "g": {"type": "text", '
                  '"choices": ["a", "b"], "default": "a"}, "r": {"type": "real", "min_value": 0, "max_value": 1, '
                  '"default": 0.5}}}}, "routes": {"/p/": {"model": "p", "mixins": ["list", "observe_list"], '
                  '"permissions": [{"and": [{"owner": "o"}, {"not": {"group": "x"}}, "read_only"]}], '
                  '"group_by": "g", "queryset": {"r__lte": 1, "g__in": ["a"]}}}} // trailing comment').encode())
    return seeds


# --- handshake and jwt ---------------------------------------------------------------------------------------------

def tokens():
    good = jwt('{"sub":"7","name":"jo","groups":["editors"],"exp":4102444800}')
    return {
        "good": good,
        "at_now": jwt('{"sub":"1","exp":%d,"nbf":%d}' % (NOW + 600, NOW - 10)),
        "by_id": jwt('{"id":7,"user":"bob","exp":%d}' % (NOW + 60)),
        "expired": jwt('{"sub":"1","exp":%d}' % (NOW - 100)),
        "leeway": jwt('{"sub":"1","exp":%d}' % (NOW - 10)),
        "not_yet": jwt('{"sub":"1","exp":%d,"nbf":%d}' % (NOW + 1000, NOW + 100)),
        "forged": jwt('{"sub":"1","exp":4102444800}', secret=b"another-secret"),
        "hs512": jwt('{"sub":"1","exp":4102444800}', alg="HS512"),
        "none": jwt('{"sub":"1","exp":4102444800}', alg="none"),
        "no_exp": jwt('{"sub":"1"}'),
        "exp_text": jwt('{"sub":"1","exp":"soon"}'),
        "no_sub": jwt('{"name":"x","exp":4102444800}'),
        "bad_groups": jwt('{"sub":"1","groups":"admin","exp":4102444800}'),
        "not_object": jwt('[1,2]'),
        "deep": jwt('{"sub":"1","exp":4102444800,"x":' + "[" * 70 + "]" * 70 + "}"),
    }


def handshake_seeds():
    t = tokens()
    lines = [
        ["/ws/posts/", "token=" + ALICE_TOKEN],
        ["/ws/posts/", "a=1&token=q%2Bv&b=2"],
        ["/ws/", "", "authorization:Bearer " + BOB_TOKEN],
        ["/ws/", "", "Authorization:bEaReR   " + t["good"] + "  "],
        ["/ws/", "", "authorization:Basic dXNlcjpwYXNz", "cookie:session=1; token=" + t["expired"]],
        ["/ws/", "", "cookie:sessionid=abc123;csrftoken=\"q w\" ; empty=; spaced = v", "cookie:late=1"],
        ["/ws/", "token=a%20b+c&x=1&empty=&flag&%6Bey=v%3D1&utf=%C3%A9&bad=%zz%4"],
        ["/ws/", "&&token=" + t["forged"] + "&", "x-token:first", "origin:http://example.com", "X-Token:second"],
        ["/ws/", "t=" + t["none"], "cookie:token=\"" + ALICE_TOKEN + "\""],
        ["/ws/", "", "authorization:Bearer", "cookie:token="],
        ["/ws/", "token=", "authorization:Bearer " + t["hs512"]],
    ]
    seeds = []
    for i, parts in enumerate(lines):
        text = "\n".join(parts).encode()
        for policy in (0x00, [0x01, 0x02, 0x03, 0x04, 0x08, 0x10, 0x20, 0x40][i % 8]):
            seeds.append(bytes([policy]) + text)
    return seeds


def jwt_seeds():
    seeds = [b"\x00" + token.encode() for token in tokens().values()]
    seeds += [b"\x00" + ALICE_TOKEN.encode(), b"\x00a.b.c", b"\x00..", b"\x00eyJhbGciOiJIUzI1NiJ9.e30."]
    payloads = [
        '{"sub": "42", "name": "Alice", "groups": ["editors", "staff"], "exp": %d}' % (NOW + 600),
        '{"id": 7, "user": "bob", "exp": %d}' % (NOW + 60),
        '{"sub": "1", "exp": %d, "nbf": %d}' % (NOW + 1000, NOW + 100),
        '{"sub": "1", "exp": %d}' % (NOW - 10),
        '{"sub": "1", "exp": %d}' % (NOW - 100),
        '{"sub": "1"}',
        '{"sub": "1", "exp": "soon"}',
        '{"name": "x", "exp": %d}' % (NOW + 600),
        '{"sub": "1", "groups": "admin", "exp": %d}' % (NOW + 600),
        '{"sub": 1.5, "id": "2", "exp": %d.5, "nbf": null}' % (NOW + 600),
        '{"sub": "", "exp": 1e300, "groups": [], "x": {"y": [1, "\\u00e9"]}}',
    ]
    for payload in payloads:
        for mode in (0x01, 0x03, 0x05, 0x09, 0x0D):  # HS256; another secret; HS384; HS512; none
            seeds.append(bytes([mode]) + payload.encode())
    return seeds


# --- event ---------------------------------------------------------------------------------------------------------

def event_seeds():
    posts_row = '{"id":1,"title":"Hello","body":"","author":"ann","likes":null,"public":false}'
    posts_old = '{"id":1,"title":"Old","body":"b","author":"ann","likes":3,"public":1}'
    kinds_row = ('{"id":2,"n":5,"r":2.5,"t":"\\u00e9t\\u00e9","b":true,"at":"2024-05-01T12:00:00Z",'
                 '"meta":{"a":[1,2,{"b":null}]}}')
    kinds_old = '{"id":2,"n":"5","r":3,"t":12,"b":0,"at":null,"meta":"[1, 2]"}'
    events = [
        '{"v":1,"t":"posts","k":1,"o":null,"r":%s}' % posts_row,
        '{"v":2,"t":"posts","k":1,"o":%s,"r":%s}' % (posts_old, posts_row),
        '{"v":3,"t":"posts","k":1,"o":%s,"r":null}' % posts_old,
        '{"v":4,"t":"tags","k":"c++","o":null,"r":{"slug":"c++","label":"C++"}}',
        '{"v":5,"t":"tags","k":"news","o":{"slug":"news","label":"News"},"r":null}',
        '{"v":6,"t":"kinds","k":2,"o":%s,"r":%s}' % (kinds_old, kinds_row),
        '{"v":7,"t":"kinds","k":3,"o":null,"r":{"id":3,"meta":"\\"text\\"","r":1e300,"n":9223372036854775807}}',
        '{"v":8,"t":"kinds","k":4,"o":null,"r":{"id":4,"meta":" [1] ","b":2,"t":{"x":1},"n":1.5}}',
        '{"v":9,"t":"nope","k":1,"o":null,"r":null}',
        '{"v":"10","t":"posts","k":1,"o":null,"r":null}',
        '{"v":11,"t":"posts","k":[1],"o":null,"r":null}',
    ]
    return [e.encode() for e in events]


def main():
    if len(sys.argv) > 1:
        sys.exit(__doc__)
    write("frame", frame_seeds())
    write("json", json_seeds())
    write("config", config_seeds())
    write("handshake", handshake_seeds())
    write("jwt", jwt_seeds())
    write("event", event_seeds())


if __name__ == "__main__":
    main()
