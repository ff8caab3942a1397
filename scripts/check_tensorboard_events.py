#!/usr/bin/env python3
"""Reads grpo's TensorBoard event files with the real `tensorboard` package and prints them.

Checks that our hand-written event files (src/core/tensorboard.cpp) are what TensorBoard expects:
every record passes TensorBoard's own reader (framing and CRCs), the first event carries the
file version, the scalars come out of TensorBoard's EventAccumulator with the right steps, and
the text summaries (the samples) are what the Text tab's plugin reads.

    pip install tensorboard          # into the git-ignored .venv
    python scripts/check_tensorboard_events.py RUN_DIR_OR_EVENT_FILE [--expect-tags a,b]

Exits non-zero when a file cannot be read or holds no scalars (or misses an expected tag).
"""
import argparse
import glob
import os
import sys

from tensorboard.backend.event_processing import event_accumulator, event_file_loader


def event_files(path):
    if os.path.isfile(path):
        return [path]
    return sorted(glob.glob(os.path.join(path, "**", "*tfevents*"), recursive=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="an event file, or a folder searched recursively")
    parser.add_argument("--expect-tags", default="", help="comma-separated tags that must exist")
    args = parser.parse_args()

    files = event_files(args.path)
    if not files:
        sys.exit(f"no *tfevents* files under {args.path}")
    for path in files:
        # Raw events: TensorBoard's record reader checks the length and data CRCs.
        events = list(event_file_loader.LegacyEventFileLoader(path).Load())
        print(f"{path}: {len(events)} events")
        if not events or events[0].file_version != "brain.Event:2":
            sys.exit(f"{path}: first event is not the file version record")
        for e in events[1:]:
            values = ", ".join(
                f"{v.tag}=<text, {len(v.tensor.string_val[0])} bytes>"
                if v.metadata.plugin_data.plugin_name == "text" else f"{v.tag}={v.simple_value:g}"
                for v in e.summary.value)
            print(f"  step {e.step:>4}  wall_time {e.wall_time:.3f}  {values}")

    # What TensorBoard's UI shows: scalars per tag via the EventAccumulator.
    # (A folder: the one holding the first event file, all of its event files together.)
    acc_path = args.path if os.path.isfile(args.path) else os.path.dirname(files[0])
    acc = event_accumulator.EventAccumulator(
        acc_path, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    if not tags:
        sys.exit("EventAccumulator found no scalars")
    print("EventAccumulator scalars:")
    for tag in tags:
        points = ", ".join(f"({s.step}, {s.value:g})" for s in acc.Scalars(tag))
        print(f"  {tag}: {points}")
    # Text summaries: tensors whose plugin is "text", as the Text tab's plugin finds them.
    texts = [t for t in acc.Tags()["tensors"]
             if acc.SummaryMetadata(t).plugin_data.plugin_name == "text"]
    for tag in texts:
        for t in acc.Tensors(tag):
            text = t.tensor_proto.string_val[0].decode("utf-8")
            first = text.splitlines()[0] if text else ""
            print(f"  text {tag} step {t.step}: {len(text)} characters, first line {first!r}")
    missing = [t for t in args.expect_tags.split(",") if t and t not in list(tags) + list(texts)]
    if missing:
        sys.exit(f"missing expected tags: {missing}")
    print("ok")


if __name__ == "__main__":
    main()
