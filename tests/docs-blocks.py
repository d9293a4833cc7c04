#!/usr/bin/python3
"""Lists the code blocks of Markdown pages for tests/docs.t, classified by the doc-test convention.

usage: docs-blocks.py OUTDIR PAGE...

Writes OUTDIR/N.sh (the block's text) and, for a block's setup markers, OUTDIR/N.setup.sh; prints one line per
block on stdout: N <TAB> class <TAB> page <TAB> line <TAB> detail. Classes:
  run       a command block: run it
  skip      <!-- doc-test: skip REASON -->; detail is REASON
  mirror    <!-- doc-test: mirror tests/NAME.t -->; detail is the test
  needs     <!-- doc-test: needs PATH -->; detail is PATH (run when PATH exists, else skip)
  text      not a command (grammar, formats, code in other languages): not run
  unmarked  looks like a command (its first word is a program) but no rule says whether it runs: a failure
The rules are in the header of tests/docs.t.
"""
import os
import re
import sys

MARK = re.compile(r'^\s*<!--\s*doc-test:\s*(\w+)\s*(.*?)\s*(-->)?\s*$')
COMMANDS = re.compile(r'^(st-[a-z]+|make|jq|awk|zcat|zstd|gzip|printf|echo|cat|git|sed|head|export|python3|mkdir|cp|ls|cd|rm|sh|bash|mpirun|spm_train|for|while|\$[A-Z]\w*/|\.\.\. \||[A-Za-z_]\w*=\S*)(\s|$)')


def first_command_word(body):
    for line in body:
        s = line.strip()
        if s and not s.startswith('#'):
            return s
    return ''


def blocks(path):
    lines = open(path, encoding='utf-8').read().split('\n')
    heading = ''
    marks = []          # markers since the last block: (kind, detail)
    prev_blank = True   # an indented block starts after a blank line or a heading
    i = 0
    while i < len(lines):
        line = lines[i]
        m = MARK.match(line)
        if m:
            kind, detail = m.group(1), m.group(2)
            if kind == 'setup':
                # a setup marker runs to its closing "-->": the lines between are commands
                body = [] if not detail else [detail]
                if not m.group(3):
                    i += 1
                    while i < len(lines) and lines[i].strip() != '-->':
                        body.append(lines[i])
                        i += 1
                marks.append(('setup', '\n'.join(body)))
            else:
                marks.append((kind, detail))
            i += 1
            prev_blank = True
            continue
        if line.startswith('#'):
            heading = line
            marks = []
        fence = re.match(r'^(\s*)(```+|~~~+)\s*([\w-]*)', line)
        if fence:
            lang = fence.group(3).lower()
            j, body = i + 1, []
            while j < len(lines) and not lines[j].lstrip().startswith(fence.group(2)):
                body.append(lines[j][len(fence.group(1)):])
                j += 1
            yield i + 1, heading, 'fence', lang, body, marks
            marks, i, prev_blank = [], j + 1, False
            continue
        if line.startswith('    ') and line.strip() and prev_blank:
            j, body = i, []
            while j < len(lines) and (lines[j].startswith('    ') or
                                      (not lines[j].strip() and j + 1 < len(lines) and lines[j + 1].startswith('    '))):
                body.append(lines[j][4:])
                j += 1
            yield i + 1, heading, 'indent', '', body, marks
            marks, i, prev_blank = [], j, False
            continue
        prev_blank = not line.strip() or line.startswith('#')
        if line.strip():
            marks = [] if not line.lstrip().startswith('<!--') else marks
        i += 1


def classify(heading, kind, lang, body, marks):
    for k, d in marks:
        if k in ('skip', 'mirror', 'needs'):
            return k, d
        if k == 'run':
            return 'run', ''
    if kind == 'fence' and lang in ('sh', 'bash', 'shell'):
        return 'run', ''
    if kind == 'fence' and lang:
        return 'text', lang
    if re.search(r'example', heading, re.I) and not first_command_word(body).startswith(('{', '[')):
        return 'run', ''   # an example of a record (a JSON object) is not a command
    if re.search(r'synopsis|options', heading, re.I):
        return 'text', 'grammar'
    if COMMANDS.match(first_command_word(body)):
        return 'unmarked', first_command_word(body)[:60]
    return 'text', ''


def main():
    out = sys.argv[1]
    n = 0
    for page in sys.argv[2:]:
        for line, heading, kind, lang, body, marks in blocks(page):
            n += 1
            cls, detail = classify(heading, kind, lang, body, marks)
            with open(os.path.join(out, '%d.sh' % n), 'w', encoding='utf-8') as f:
                f.write('\n'.join(body).rstrip('\n') + '\n')
            setup = [d for k, d in marks if k == 'setup']
            if setup:
                with open(os.path.join(out, '%d.setup.sh' % n), 'w', encoding='utf-8') as f:
                    f.write('\n'.join(setup) + '\n')
            print('%d\t%s\t%s\t%d\t%s' % (n, cls, page, line, detail.replace('\t', ' ')))


main()
