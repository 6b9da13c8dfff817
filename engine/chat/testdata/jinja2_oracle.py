"""Render cases.json with Python's Jinja2 set up like Hugging Face's
apply_chat_template (trim_blocks, lstrip_blocks, loopcontrols, json.dumps
tojson, raise_exception, strftime_now), writing golden/NAME.txt and checking
that error cases raise the expected message. The Go tests compare against
these files; run from anywhere: python3 jinja2_oracle.py
"""
import datetime
import json
import os
import sys

from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))


def raise_exception(msg):
    raise TemplateError(msg)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def main():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    failed = 0
    for c in json.load(open(os.path.join(HERE, "cases.json"))):
        src = open(os.path.join(HERE, "templates", c["template"] + ".jinja")).read()
        msgs = []
        for m in c["messages"]:
            mm = {"role": m["role"], "content": m["content"]}
            if m.get("tool_calls"):
                mm["tool_calls"] = [
                    {"type": "function", "function": {"name": tc["name"], "arguments": tc["arguments"]}, "id": tc["id"]}
                    for tc in m["tool_calls"]
                ]
            if m.get("tool_call_id"):
                mm["tool_call_id"] = m["tool_call_id"]
            msgs.append(mm)
        kw = dict(c.get("vars") or {})
        kw.update(messages=msgs, add_generation_prompt=c["add_generation_prompt"],
                  bos_token=c["bos"], eos_token=c["eos"])
        if c.get("tools") is not None:
            # Go maps have no order: the Go side writes keys sorted
            kw["tools"] = json.loads(json.dumps(c["tools"], sort_keys=True))
        env.globals.pop("strftime_now", None)
        if c.get("now"):
            day = datetime.datetime.strptime(c["now"], "%Y-%m-%d")
            env.globals["strftime_now"] = lambda f, day=day: day.strftime(f)
        try:
            out, err = env.from_string(src).render(**kw), None
        except TemplateError as e:
            out, err = None, str(e)
        if c.get("error"):
            if err != c["error"]:
                print(c["name"], "want error", repr(c["error"]), "got", repr(err))
                failed += 1
            continue
        if err is not None:
            print(c["name"], "error", err)
            failed += 1
            continue
        with open(os.path.join(HERE, "golden", c["name"] + ".txt"), "w") as f:
            f.write(out)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
