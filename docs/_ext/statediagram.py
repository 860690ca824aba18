"""State diagrams from a small text source, drawn as SVG at build time (pure Python, no Graphviz).

The source (``docs/diagrams/*.states``), one transition a line::

    # a comment
    [*] -> LISTENING : TCPServer(port, ...)
    LISTENING -> CONNECTED : a client connects
    CONNECTED -> CONNECTED : MESSAGE
    CONNECTED -> LISTENING : the client left\\ndisconnect()

``[*]`` is the start (a dot); ``\\n`` in a label breaks the line; a state that no transition
leaves is drawn with a double border (an end).  In a page (MyST)::

    ```{state-diagram} tcpserver.states
    :alt: The states of a TCPServer
    ```

The layout is the classic layered one (Sugiyama), kept small: back edges are turned round so
the graph runs top to bottom, every label is a node of its own between the two states of its
edge (so labels never overlap boxes or each other), long edges get invisible bend points, a few
barycenter sweeps order each layer, and a few sweeps place each node near its neighbours.
A self-loop is drawn as an arc on the right of its state, its label beside it.

Run as a script to get the SVG on stdout: ``python3 docs/_ext/statediagram.py FILE.states``.
"""
from __future__ import print_function

import io
import os
import random
import re
import sys
from xml.sax.saxutils import escape

START = "[*]"
#: text metrics (SVG has no layout engine: estimated from the fonts' average widths)
STATE_FONT, STATE_CHAR = 14, 8.45      # monospace, bold: 0.6 em
LABEL_FONT, LABEL_CHAR = 12.5, 6.9     # sans-serif: generous (narrow text leaves room, never overflows)
LINE = 16                              # a label's line height
PAD_X, PAD_Y = 14, 9                   # inside a state's box
GAP_X, LAYER_GAP = 28, 18              # between neighbours of a layer, between layers
MARGIN = 16
TRIALS = 40                            # orders tried (the file's, then seeded shuffles)
LOOP = 26                              # how far a self-loop reaches right of its box

LINE_RE = re.compile(r"^\s*(\S+)\s*->\s*(\S+)\s*(?::\s*(.*?))?\s*$")


class DiagramError(ValueError):
    pass


def parse(text, name="diagram"):
    """[(source, target, label lines)] of a ``.states`` text."""
    edges = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = LINE_RE.match(line)
        if not m:
            raise DiagramError("%s:%d: expected 'STATE -> STATE : label', got %r" % (name, number, line))
        source, target, label = m.group(1), m.group(2), m.group(3) or ""
        if target == START:
            raise DiagramError("%s:%d: nothing leads to the start [*]" % (name, number))
        edges.append((source, target, [part.strip() for part in label.split("\\n")] if label else []))
    if not edges:
        raise DiagramError("%s: no transitions" % name)
    return edges


class Node(object):
    def __init__(self, key, kind, text=(), edge=None):
        self.key, self.kind, self.text, self.edge = key, kind, list(text), edge
        self.layer = 0
        self.x = 0.0  # the left side
        self.loops = []  # labels of self-loops (states only)
        if kind == "state":
            self.w, self.h = len(key) * STATE_CHAR + 2 * PAD_X, STATE_FONT + 2 * PAD_Y
        elif kind == "start":
            self.w, self.h = 16, 16
        elif kind == "label":
            self.w = max(len(t) for t in self.text) * LABEL_CHAR + 10 if self.text else 0
            self.h = max(1, len(self.text)) * LINE
        else:  # a bend point
            self.w, self.h = 0, 0
        self.out, self.into = [], []

    @property
    def space(self):
        """The width it takes in its layer (a state with self-loops: its loops and their labels too)."""
        if self.loops:
            return self.w + LOOP + 8 + max(len(t) for lines in self.loops for t in lines) * LABEL_CHAR
        return self.w

    @property
    def port(self):
        """The x where edges meet it: the middle of a box, the left side of a label."""
        return self.x + (0 if self.kind == "label" else self.w / 2.0)


def layout(edges):
    nodes, order = {}, []

    def node(key, kind, **kw):
        if key not in nodes:
            nodes[key] = Node(key, kind, **kw)
            order.append(nodes[key])
        return nodes[key]

    for source, target, _ in edges:
        node(source, "start" if source == START else "state")
        node(target, "state")
    # 1. break the cycles: a depth-first walk from the start (then from the others, in file order);
    # an edge back to a state on the walk's path is drawn turned round
    adjacency = dict((n.key, []) for n in order)
    for i, (s, t, _) in enumerate(edges):
        if s != t:
            adjacency[s].append((t, i))
    back, state = set(), {}

    def walk(key):
        state[key] = "on path"
        for target, i in adjacency[key]:
            if state.get(target) == "on path":
                back.add(i)
            elif target not in state:
                walk(target)
        state[key] = "done"
    for n in order:
        if n.key not in state:
            walk(n.key)
    # 2. every edge through a label node: state -> label -> state (turned round if back)
    chains = []
    for i, (s, t, label) in enumerate(edges):
        if s == t:
            nodes[s].loops.append(label or [""])
            continue
        a, b = (t, s) if i in back else (s, t)
        lab = node("label#%d" % i, "label", text=label, edge=i)
        chains.append((i, [nodes[a], lab, nodes[b]]))
    links = [(c[0], c[1]) for _, chain in chains for c in (chain[:2], chain[1:])]
    # 3. layers: the longest path from a source (states on even layers, labels between them)
    for n in order:
        n.layer = 0
    for _ in range(len(order) + 1):
        changed = False
        for a, b in links:
            if b.layer < a.layer + 1:
                b.layer, changed = a.layer + 1, True
        if not changed:
            break
    else:
        raise DiagramError("the layout did not settle (a cycle left?)")
    # 4. long links get bend points, one per layer they cross
    paths = {}
    for i, chain in chains:
        path = [chain[0]]
        for a, b in zip(chain, chain[1:]):
            for layer in range(a.layer + 1, b.layer):
                bend = node("bend#%d.%d" % (i, layer), "bend")
                bend.layer = layer
                path.append(bend)
            path.append(b)
        paths[i] = path
    for path in paths.values():
        for a, b in zip(path, path[1:]):
            a.out.append(b)
            b.into.append(a)
    layers = {}
    for n in order:
        layers.setdefault(n.layer, []).append(n)
    rows = [layers[k] for k in sorted(layers)]
    # 5. order each layer: barycentre sweeps, then neighbours swapped while that removes crossings;
    # from the file's order and from a few seeded shuffles of it, keeping the order with the fewest
    # crossings (the graphs are small: this is cheap, and the result the same on every build)
    best = None
    for trial in range(TRIALS):
        trial_rows = [list(row) for row in rows]
        if trial:
            shuffle = random.Random(trial).shuffle
            for row in trial_rows:
                shuffle(row)
        _order(trial_rows)
        count = sum(_crossings(trial_rows, r, r + 1) for r in range(len(trial_rows) - 1))
        if best is None or count < best[0]:
            best = (count, trial_rows)
    rows = best[1]
    # 6. x: each node as near the mean of its neighbours' ports as its layer lets it (a least-squares
    # fit that keeps the order and the gaps), a few sweeps down and up
    for row in rows:
        x = 0.0
        for n in row:
            n.x = x
            x += n.space + GAP_X
    for sweep in range(30):
        for row in (rows if sweep % 2 == 0 else rows[::-1]):
            wanted = []
            for n in row:
                near = n.into + n.out
                port = sum(m.port for m in near) / float(len(near)) if near else n.port
                wanted.append(port - (n.port - n.x))
            for n, x in zip(row, _fit(wanted, [n.space + GAP_X for n in row])):
                n.x = x
    left = min(n.x for n in order)
    for n in order:
        n.x -= left - MARGIN
    # y: each row as high as its highest node
    y = MARGIN
    for row in rows:
        height = max(n.h for n in row) if any(n.h for n in row) else 0
        for n in row:
            n.y = y + (height - n.h) / 2.0
            n.cy = y + height / 2.0
        y += height + LAYER_GAP
    width = max(n.x + n.space for n in order) + MARGIN
    return nodes, order, paths, back, width, y - LAYER_GAP + MARGIN


def _position(row):
    return dict((n, k) for k, n in enumerate(row))


def _crossings(rows, upper, lower):
    """How many edges between two rows cross."""
    if upper < 0 or lower >= len(rows):
        return 0
    where_up, where_low = _position(rows[upper]), _position(rows[lower])
    pairs = [(where_up[a], where_low[b]) for a in rows[upper] for b in a.out if b in where_low]
    return sum(1 for i, (a1, b1) in enumerate(pairs) for a2, b2 in pairs[i + 1:] if (a1 - a2) * (b1 - b2) < 0)


def _order(rows):
    """Order each row (in place): barycentre sweeps down and up, then adjacent swaps."""
    for sweep in range(8):
        downward = sweep % 2 == 0
        for r in (range(1, len(rows)) if downward else range(len(rows) - 2, -1, -1)):
            ref = _position(rows[r - 1] if downward else rows[r + 1])
            current = _position(rows[r])

            def key(n):
                near = [ref[m] for m in (n.into if downward else n.out) if m in ref]
                return (sum(near) / float(len(near)) if near else current[n], current[n])
            rows[r].sort(key=key)
    improved = True
    while improved:
        improved = False
        for r, row in enumerate(rows):
            for k in range(len(row) - 1):
                before = _crossings(rows, r - 1, r) + _crossings(rows, r, r + 1)
                row[k], row[k + 1] = row[k + 1], row[k]
                if _crossings(rows, r - 1, r) + _crossings(rows, r, r + 1) < before:
                    improved = True
                else:
                    row[k], row[k + 1] = row[k + 1], row[k]


def _fit(wanted, widths):
    """Left sides nearest to ``wanted`` (least squares) with each at least ``widths[k]`` right of the
    one before: isotonic regression (pool adjacent violators) on the positions less their offsets."""
    offsets, total = [], 0.0
    for w in widths:
        offsets.append(total)
        total += w
    blocks = []  # [mean, count]
    for t in (x - o for x, o in zip(wanted, offsets)):
        blocks.append([t, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m2, c2), (m1, c1) = blocks.pop(), blocks.pop()
            blocks.append([(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2])
    fitted = [m for m, c in blocks for _ in range(c)]
    return [f + o for f, o in zip(fitted, offsets)]


def _ports(box, others):
    """x where each of ``others`` meets ``box`` (one side), spread over the box's middle, in their order."""
    others = sorted(set(others), key=lambda m: m.port)
    if len(others) < 2 or box.kind != "state":
        return dict((m, box.port) for m in others)
    span = min(box.w * 0.6, 24.0 * (len(others) - 1))
    return dict((m, box.port - span / 2.0 + span * k / (len(others) - 1)) for k, m in enumerate(others))


def _curve(points):
    """An SVG path through ``points`` with vertical tangents at each (smooth top-to-bottom curves)."""
    d = ["M %.1f %.1f" % points[0]]
    for (x1, y1), (x2, y2) in zip(points, points[1:]):
        if abs(x1 - x2) < 0.5:
            d.append("L %.1f %.1f" % (x2, y2))
        else:
            ym = (y1 + y2) / 2.0
            d.append("C %.1f %.1f %.1f %.1f %.1f %.1f" % (x1, ym, x2, ym, x2, y2))
    return " ".join(d)


def render(text, name="diagram", title=None):
    """The SVG (a string) of a ``.states`` text."""
    edges = parse(text, name)
    nodes, order, paths, back, width, height = layout(edges)
    ident = re.sub(r"\W", "-", name)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" class="state-diagram" width="%d" height="%d" '
           'viewBox="0 0 %d %d" role="img" style="max-width: 100%%; height: auto">' % (width, height, width, height)]
    if title:
        out.append("<title>%s</title>" % escape(title))
    out.append('<defs><marker id="%s-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
               'markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#444"/>'
               '</marker></defs>' % ident)
    out.append('<g fill="none" stroke="#444" stroke-width="1.4">')
    for i, path in sorted(paths.items()):
        points = []
        for k, n in enumerate(path):
            if n.kind == "label":
                points += [(n.port, n.y), (n.port, n.y + n.h)]
            elif n.kind == "bend":
                points.append((n.port, n.cy))
            elif k == 0:
                points.append((_ports(n, n.out)[path[1]], n.y + n.h))  # leaves a box at its bottom
            else:
                points.append((_ports(n, n.into)[path[k - 1]], n.y))  # enters at its top
        marker = 'marker-start' if i in back else 'marker-end'
        dash = ' stroke-dasharray="5 3"' if i in back else ""
        out.append('<path d="%s" %s="url(#%s-arrow)"%s/>' % (_curve(points), marker, ident, dash))
    for n in order:  # self-loops: an arc on the right side of the box
        if n.kind == "state" and n.loops:
            x, top, bottom = n.x + n.w, n.y + 5, n.y + n.h - 5
            out.append('<path d="M %.1f %.1f C %.1f %.1f %.1f %.1f %.1f %.1f" marker-end="url(#%s-arrow)"/>'
                       % (x, top, x + LOOP, top - 8, x + LOOP, bottom + 8, x + 1, bottom, ident))
    out.append("</g>")
    out.append('<g font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="%s" fill="#222">' % LABEL_FONT)
    for n in order:
        if n.kind == "label" and n.text:
            for k, t in enumerate(n.text):
                out.append('<text x="%.1f" y="%.1f">%s</text>' % (n.x + 6, n.y + LINE * (k + 0.75), escape(t)))
        if n.kind == "state" and n.loops:
            lines = [t for label in n.loops for t in label]
            first = n.cy - (len(lines) - 1) * LINE / 2.0
            for k, t in enumerate(lines):
                out.append('<text x="%.1f" y="%.1f">%s</text>' % (n.x + n.w + LOOP + 6, first + k * LINE + 4,
                                                                   escape(t)))
    out.append("</g>")
    ends = set(n.key for n in order if n.kind == "state") - set(s for s, t, _ in edges if s != t)
    for n in order:
        if n.kind == "start":
            out.append('<circle cx="%.1f" cy="%.1f" r="8" fill="#222"/>' % (n.port, n.y + n.h / 2.0))
        elif n.kind == "state":
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="9" fill="#eef3fb" stroke="#2c5d9e" '
                       'stroke-width="1.6"/>' % (n.x, n.y, n.w, n.h))
            if n.key in ends:  # an end: a double border
                out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="6" fill="none" '
                           'stroke="#2c5d9e" stroke-width="1"/>' % (n.x + 3, n.y + 3, n.w - 6, n.h - 6))
            out.append('<text x="%.1f" y="%.1f" text-anchor="middle" font-family="DejaVu Sans Mono, Menlo, '
                       'Consolas, monospace" font-size="%d" font-weight="bold" fill="#183a66">%s</text>'
                       % (n.port, n.y + n.h / 2.0 + STATE_FONT * 0.36, STATE_FONT, escape(n.key)))
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --- Sphinx ------------------------------------------------------------------------------------

def setup(app):
    from docutils import nodes
    from docutils.parsers.rst import Directive, directives

    class StateDiagram(Directive):
        """``state-diagram FILE``: FILE in docs/diagrams, drawn inline as SVG (HTML builders)."""

        required_arguments = 1
        option_spec = {"alt": directives.unchanged}

        def run(self):
            env = self.state.document.settings.env
            path = os.path.join(env.srcdir, "diagrams", self.arguments[0])
            env.note_dependency(path)
            try:
                with io.open(path, encoding="utf-8") as f:
                    svg = render(f.read(), os.path.basename(path), self.options.get("alt"))
            except (IOError, OSError, DiagramError) as e:
                raise self.error("state-diagram %s: %s" % (self.arguments[0], e))
            html = '<figure class="state-diagram">%s</figure>' % svg
            return [nodes.raw("", html, format="html")]

    app.add_directive("state-diagram", StateDiagram)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    with io.open(sys.argv[1], encoding="utf-8") as f:
        sys.stdout.write(render(f.read(), os.path.basename(sys.argv[1]), os.path.basename(sys.argv[1])))
