#!/usr/bin/env node
// Example external plugin in Node.js: the original README's format_json. One JSON request per
// line on stdin, one JSON answer per line on stdout (per call, stdin closes after one request).
'use strict';
const readline = require('readline');

const rl = readline.createInterface({ input: process.stdin });

rl.on('line', (line) => {
  if (line.trim() === '') return;
  let response;
  try {
    const request = JSON.parse(line);
    const result = handleTool(request.tool, request.arguments);
    response = { content: [{ type: 'text', text: result }], isError: false };
  } catch (e) {
    response = { content: [{ type: 'text', text: e.message }], isError: true };
  }
  process.stdout.write(JSON.stringify(response) + '\n');
});

function handleTool(tool, args) {
  switch (tool) {
    case 'format_json':
      return JSON.stringify(JSON.parse(args.input), null, args.indent ?? 2);
    default:
      throw new Error(`Unknown tool: ${tool}`);
  }
}
