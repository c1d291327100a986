#!/usr/bin/python3
"""Example external plugin in Python: counts lines, words and characters of a text.

One JSON request per line on stdin, one JSON answer per line on stdout (per call, stdin closes
after one request; with `mode: persistent` the loop keeps serving).
"""
import json
import sys


def text_stats(arguments):
    text = arguments["text"]
    return f"lines: {len(text.splitlines())}, words: {len(text.split())}, characters: {len(text)}"


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if request.get("tool") != "text_stats":
                raise ValueError(f"Unknown tool: {request.get('tool')!r}")
            response = {"content": [{"type": "text", "text": text_stats(request["arguments"])}], "isError": False}
        except Exception as error:  # every failure is an answer, never a traceback on stdout
            response = {"content": [{"type": "text", "text": str(error)}], "isError": True}
        sys.stdout.write(json.dumps(response) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
