"""Write the tiny IAM-OnDB fixtures in raw/ (schema of docs/iam-ondb-format.md §1.3, §1.5). Re-run to rebuild.

    python tests/data/iam/make_fixtures.py
"""

import os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "raw")

HEADER = '<?xml version="1.0" encoding="ISO-8859-1"?>\n'


def line_xml(strokes, t0=769.05):
    """Schema-exact lineStrokes XML: LF line ends except CRLF on <Point/> lines, bbox in the description."""
    xs = [x for s in strokes for x, _ in s]
    ys = [y for s in strokes for _, y in s]
    out = [HEADER, "<WhiteboardCaptureSession>\n", "  <WhiteboardDescription>\n",
           '    <SensorLocation corner="top_left"/>\n',
           f'    <DiagonallyOppositeCoords x="{max(xs)}" y="{max(ys)}"/>\n',
           f'    <VerticallyOppositeCoords x="{min(xs)}" y="{max(ys)}"/>\n',
           f'    <HorizontallyOppositeCoords x="{max(xs)}" y="{min(ys)}"/>\n',
           "  </WhiteboardDescription>\n", "  <StrokeSet>\n"]
    t = t0
    for stroke in strokes:
        times = [t + 0.01 * k for k in range(len(stroke))]
        out.append(f'    <Stroke colour="black" start_time="{times[0]:.2f}" end_time="{times[-1]:.2f}">\n')
        for (x, y), tt in zip(stroke, times):
            out.append(f'      <Point x="{x}" y="{y}" time="{tt:.2f}"/>\r\n')
        out.append("    </Stroke>\n")
        t = times[-1] + 0.25
    out += ["  </StrokeSet>\n", "</WhiteboardCaptureSession>\n"]
    return "".join(out).encode("iso-8859-1")


def zigzag(x0, y0, n, dx=18, dy=7):
    return [(x0 + dx * k, y0 + (dy if k % 2 else -dy)) for k in range(n)]


# form id -> list of lines; each line is a list of strokes of (x, y) points (y grows downward)
GOOD = {
    "a01-000u-01": [zigzag(1073, 1058, 6), [(1200, 1000)], zigzag(1250, 1040, 5)],  # incl. a one-point stroke
    "a01-001-01": [zigzag(900, 700, 12), zigzag(1150, 720, 9)],
    "a01-053-01": [zigzag(500, 600, 4)],  # 4 points -> 3 rows: below --min-length 5, dropped from train
    "a01-053x-01": [zigzag(520, 610, 10), zigzag(760, 615, 10)],
    "a02-000-01": [zigzag(300, 400, 3)],  # short validation line: kept whatever --min-length
    "a02-000-02": [zigzag(310, 1100, 7), [(500, 1090)]],
}


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def line_path(line_id):
    form = line_id[:-3]
    folder = form[:7]
    return os.path.join(HERE, "lineStrokes", form[:3], folder, line_id + ".xml")


def main():
    for line_id, strokes in GOOD.items():
        write(line_path(line_id), line_xml(strokes))
    good = line_xml([zigzag(1000, 900, 8)])
    write(line_path("a01-000u-02"), good[: len(good) // 2])  # truncated mid-file
    empty = (HEADER + "<WhiteboardCaptureSession>\n  <WhiteboardDescription>\n"
             '    <SensorLocation corner="top_left"/>\n  </WhiteboardDescription>\n'
             "  <StrokeSet>\n  </StrokeSet>\n</WhiteboardCaptureSession>\n").encode()
    write(line_path("a01-000u-03"), empty)  # empty StrokeSet
    write(line_path("a01-001-02"), line_xml([zigzag(1000, 900, 4), [(99999999, 5)]]))  # absurd coordinates
    write(line_path("a01-001-03"), b"\x89PNG\r\n\x1a\n\x00\x00binary, not XML\xff\xfe")  # non-XML file
    write(line_path("a01-099z-01"), line_xml([zigzag(1, 2, 3)]))  # form in no split list: ignored
    splits = {"trainset": ["a01-000u", "a01-001"], "testset_v": ["a02-000"],
              "testset_t": ["a01-053x"], "testset_f": ["a01-053", "z01-000z"]}  # z01-000z: no line files
    for name, ids in splits.items():
        write(os.path.join(HERE, name + ".txt"), "".join(f" {i}\n" for i in ids).encode())


if __name__ == "__main__":
    main()
