"""`replate replace` and `replate remove` over many images: in-process (the pipeline the Triton models run, with
the same `auto` matting, no server) or against a server (`--server URL --key KEY`, through `replate.client`, which
retries 429/503 without charging twice). A progress bar with a line per image, a summary of the failures, exit
status 1 if any image failed, and a contact sheet of every output on request.

Each `--prompt`, `--scene-image` and `--color` is one scene; every image gets every scene, `--variants` outputs each
(seeds seed, seed+1, ...), so one command renders a grid of ad variants. Outputs are named after their input:
`photo.png`, with `-s2` for the second scene and `-v3` for the third variant when there are several.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from replate.client import ApiError, Client
from replate.errors import InvalidRequest, ReplateError
from replate.imageio import ImageLimits, decode_image, encode_image
from replate.matting import create_engine
from replate.pipeline import RemoveOptions, ReplaceOptions, remove_background, replace_background
from replate.tiles import header_tile, labelled_tile, over_checkerboard

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif"})
GLOB_CHARACTERS = frozenset("*?[")
SEED_MAX = 2**32 - 1
MAX_VARIANTS = 4
DEFAULT_CONCURRENCY = 4
MATTING_ENGINE = "auto"
"""What the `matting` Triton model runs, so that in-process results match the server's."""
SHEET_LIMITS = ImageLimits(max_megapixels=100.0, max_bytes=256 << 20)
_MAX_SHEET_WIDTH_PX = 3000


@dataclass(frozen=True)
class Scene:
    label: str
    prompt: str | None = None
    color: str | None = None
    image: bytes | None = None


@dataclass(frozen=True)
class Task:
    """One request: an input and, for replace, one scene; `outputs` are the files it writes, one per variant."""

    source: Path
    scene: Scene | None
    outputs: tuple[Path, ...]


@dataclass(frozen=True)
class Produced:
    images: list[bytes]
    credits_charged: int = 0
    remaining_credits: int | None = None


@dataclass(frozen=True)
class Outcome:
    task: Task
    produced: Produced | None = None
    error: str | None = None


Produce = Callable[[Task], Produced]


def add_replace_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common_arguments(parser)
    scenes = parser.add_argument_group("scenes (each value is one scene; give at least one)")
    scenes.add_argument("--prompt", action="append", default=[], help="a scene described in words")
    scenes.add_argument("--scene-image", action="append", default=[], type=Path, help="a reference photo as scene")
    scenes.add_argument("--color", action="append", default=[], help="a solid colour scene, e.g. '#f4efe6'")
    parser.add_argument("--variants", type=int, default=1, help=f"outputs per image and scene, 1-{MAX_VARIANTS}")
    parser.add_argument("--seed", type=int, help="seed of the first variant (default: one random seed for the run)")
    parser.add_argument("--format", choices=("png", "jpeg", "webp"), default="png", help="output format")
    parser.add_argument("--no-shadow", action="store_true", help="do not carry the subject's shadow to the scene")
    parser.add_argument("--harmonize", type=float, default=0.0, help="match the subject to the scene's light, 0-1")
    parser.add_argument(
        "--shadow", choices=("none", "contact", "cast"), help="synthesise a shadow (default: the scene engine's)"
    )


def add_remove_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common_arguments(parser)
    parser.add_argument("--channels", choices=("rgba", "alpha"), default="rgba", help="cutout or the matte alone")
    parser.add_argument("--format", choices=("png", "webp"), default="png", help="output format")


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files, folders (their images) or glob patterns")
    parser.add_argument("--out", type=Path, required=True, help="folder for the outputs (created if missing)")
    parser.add_argument("--server", help="run on this replate server (e.g. http://127.0.0.1:8080), not in-process")
    parser.add_argument("--key", help="API key for --server (default: $REPLATE_API_KEY)")
    parser.add_argument(
        "--concurrency", type=int, help=f"requests in flight with --server (default {DEFAULT_CONCURRENCY})"
    )
    parser.add_argument("--contact-sheet", type=Path, help="also write one image showing every input and output")
    parser.add_argument("--models-dir", type=Path, help="matting weights for in-process runs")


def replace_command(args: argparse.Namespace) -> int:
    if not 1 <= args.variants <= MAX_VARIANTS:
        raise InvalidRequest(f"--variants must be between 1 and {MAX_VARIANTS}")
    scenes = _scenes(args)
    seed = args.seed if args.seed is not None else secrets.randbelow(SEED_MAX - MAX_VARIANTS)
    if not 0 <= seed <= SEED_MAX - args.variants:
        raise InvalidRequest(f"--seed must be between 0 and {SEED_MAX - args.variants}")
    sources = collect_images(args.images)
    tasks = [
        Task(source, scene, _output_paths(args.out, source, index, len(scenes), args.variants, args.format))
        for source in sources
        for index, scene in enumerate(scenes)
    ]
    options = ReplaceOptions(
        seed=seed,
        num_outputs=args.variants,
        output_format=args.format,
        preserve_shadow=not args.no_shadow,
        harmonize=args.harmonize,
        shadow=args.shadow,
    )
    columns = [f"{scene.label} v{variant + 1}" for scene in scenes for variant in range(args.variants)]
    print(
        f"{len(sources)} image(s) x {len(scenes)} scene(s) x {args.variants} variant(s), seed {seed} "
        f"(--seed {seed} renders the same scenes again)"
    )
    with _client(args) if args.server else nullcontext() as client:
        produce = _server_replace(client, options) if client else _local_replace(args.models_dir, options)
        return _run(args, "Replacing", tasks, produce, columns)


def remove_command(args: argparse.Namespace) -> int:
    sources = collect_images(args.images)
    tasks = [Task(source, None, _output_paths(args.out, source, 0, 1, 1, args.format)) for source in sources]
    options = RemoveOptions(channels=args.channels, output_format=args.format)
    with _client(args) if args.server else nullcontext() as client:
        produce = _server_remove(client, options) if client else _local_remove(args.models_dir, options)
        return _run(args, "Removing", tasks, produce, ["cutout" if args.channels == "rgba" else "matte"])


def collect_images(patterns: list[str]) -> list[Path]:
    """Files as given; a folder's images (by suffix, not recursive); a glob's images. Each file once, in order."""
    found: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif GLOB_CHARACTERS & set(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
            found += [p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        elif path.is_file():
            found.append(path)
        else:
            raise InvalidRequest(f"{pattern}: no such file or folder")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise InvalidRequest(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {' '.join(patterns)}")
    return unique


def _scenes(args: argparse.Namespace) -> list[Scene]:
    scenes = [Scene(f"prompt '{_short(prompt)}'", prompt=prompt) for prompt in args.prompt]
    scenes += [Scene(f"image {path.name}", image=_read_scene_image(path)) for path in args.scene_image]
    scenes += [Scene(f"colour {color}", color=color) for color in args.color]
    if not scenes:
        raise InvalidRequest("give a scene: --prompt TEXT, --scene-image FILE or --color '#RRGGBB' (each repeatable)")
    return scenes


def _read_scene_image(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"--scene-image {path}: {exc.strerror}") from exc


def _short(text: str, length: int = 24) -> str:
    return text if len(text) <= length else text[: length - 3] + "..."  # OpenCV draws ASCII only


def _output_paths(out: Path, source: Path, scene: int, scenes: int, variants: int, fmt: str) -> tuple[Path, ...]:
    stem = source.stem + (f"-s{scene + 1}" if scenes > 1 else "")
    suffix = "jpg" if fmt == "jpeg" else fmt
    if variants == 1:
        return (out / f"{stem}.{suffix}",)
    return tuple(out / f"{stem}-v{variant + 1}.{suffix}" for variant in range(variants))


def _check_names(tasks: list[Task]) -> None:
    writers: dict[Path, Path] = {}
    for task in tasks:
        for output in task.outputs:
            other = writers.setdefault(output, task.source)
            if other != task.source:
                raise InvalidRequest(f"{other} and {task.source} would both write {output}: rename one")


def _client(args: argparse.Namespace) -> Client:
    key = args.key or os.environ.get("REPLATE_API_KEY")
    if not key:
        raise InvalidRequest("--server needs an API key: --key KEY or REPLATE_API_KEY")
    return Client(args.server, key)


def _local_replace(models_dir: Path | None, options: ReplaceOptions) -> Produce:
    engine = create_engine(MATTING_ENGINE, models_dir=models_dir)

    def produce(task: Task) -> Produced:
        scene = task.scene
        assert scene is not None
        with_scene = dataclasses.replace(options, scene_prompt=scene.prompt, bg_color=scene.color)
        result = replace_background(task.source.read_bytes(), with_scene, engine.estimate, scene_image=scene.image)
        return Produced(result.images)

    return produce


def _local_remove(models_dir: Path | None, options: RemoveOptions) -> Produce:
    engine = create_engine(MATTING_ENGINE, models_dir=models_dir)
    return lambda task: Produced(remove_background(task.source.read_bytes(), options, engine.estimate).images)


def _server_replace(client: Client, options: ReplaceOptions) -> Produce:
    def produce(task: Task) -> Produced:
        scene = task.scene
        assert scene is not None
        optional = {
            "scene_prompt": scene.prompt,
            "bg_color": scene.color,
            "scene_image": scene.image,
            "shadow": options.shadow,
        }
        result = client.replace_background(
            task.source,
            seed=options.seed,
            num_outputs=options.num_outputs,
            output_format=options.output_format,
            preserve_shadow=options.preserve_shadow,
            harmonize=options.harmonize,
            return_base64=True,
            **{name: value for name, value in optional.items() if value is not None},
        )
        return Produced(result.images(), result.credits_charged, result.remaining_credits)

    return produce


def _server_remove(client: Client, options: RemoveOptions) -> Produce:
    def produce(task: Task) -> Produced:
        result = client.remove_background(
            task.source,
            channels=options.channels,
            output_format=options.output_format,
        )
        return Produced(result.images, result.credits_charged, result.remaining_credits)

    return produce


def _run(args: argparse.Namespace, verb: str, tasks: list[Task], produce: Produce, columns: list[str]) -> int:
    _check_names(tasks)
    if args.concurrency is not None and not args.server:
        raise InvalidRequest("--concurrency is for --server; in-process runs one image at a time")
    concurrency = args.concurrency or (DEFAULT_CONCURRENCY if args.server else 1)
    if concurrency < 1:
        raise InvalidRequest("--concurrency must be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    console = Console(highlight=False, soft_wrap=True)
    outcomes = run_tasks(tasks, produce, concurrency, console, verb)
    _print_summary(console, outcomes, args.out)
    if args.contact_sheet:
        write_contact_sheet(args.contact_sheet, outcomes, columns)
        console.print(f"Contact sheet: {args.contact_sheet}")
    return 1 if any(outcome.error for outcome in outcomes) else 0


def run_tasks(tasks: list[Task], produce: Produce, concurrency: int, console: Console, verb: str) -> list[Outcome]:
    """Every task, `concurrency` at a time, with a progress bar and a line per finished task; in task order."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    outcomes: dict[Task, Outcome] = {}
    with Progress(*columns, console=console) as progress, ThreadPoolExecutor(concurrency) as pool:
        bar = progress.add_task(verb, total=len(tasks))
        futures = [pool.submit(_attempt, task, produce) for task in tasks]
        for future in as_completed(futures):
            outcome = future.result()
            outcomes[outcome.task] = outcome
            progress.console.print(_status_line(outcome))
            progress.advance(bar)
    return [outcomes[task] for task in tasks]


def _attempt(task: Task, produce: Produce) -> Outcome:
    """One task, its outputs written; any failure of this image is its outcome, never the run's end."""
    try:
        produced = produce(task)
        for path, image in zip(task.outputs, produced.images, strict=True):
            path.write_bytes(image)
    except ApiError as error:
        return Outcome(task, error=f"{error.code}: {error.message}")
    except ReplateError as error:
        return Outcome(task, error=f"{error.code}: {error.message}")
    except (OSError, httpx.HTTPError) as error:
        return Outcome(task, error=f"{type(error).__name__}: {error}")
    return Outcome(task, produced=produced)


def _status_line(outcome: Outcome) -> str:
    task = outcome.task
    scene = " " + escape(f"[{task.scene.label}]") if task.scene else ""
    if outcome.error:
        return f"[red]✗[/red] {escape(str(task.source))}{scene}: {escape(outcome.error)}"
    assert outcome.produced is not None
    names = ", ".join(path.name for path in task.outputs)
    charged = f" ({outcome.produced.credits_charged} credits)" if outcome.produced.credits_charged else ""
    return f"[green]✓[/green] {escape(str(task.source))}{scene} → {escape(names)}{charged}"


def _print_summary(console: Console, outcomes: list[Outcome], out: Path) -> None:
    failed = [outcome for outcome in outcomes if outcome.error]
    done = [outcome.produced for outcome in outcomes if outcome.produced]
    written = sum(len(produced.images) for produced in done)
    line = f"{len(done)} of {len(outcomes)} succeeded, {written} file(s) written to {out}, {len(failed)} failed"
    charged = sum(produced.credits_charged for produced in done)
    remaining = [p.remaining_credits for p in done if p.remaining_credits is not None]
    if charged or remaining:
        line += f"; {charged} credits charged" + (f", {min(remaining)} left" if remaining else "")
    console.print(line, style="bold red" if failed else "bold green")
    for outcome in failed:
        console.print(f"  failed: {escape(str(outcome.task.source))}: {escape(outcome.error or '')}")


def write_contact_sheet(path: Path, outcomes: list[Outcome], columns: list[str]) -> None:
    """One row per input image: the input, then its outputs in column order (a failure as a grey tile)."""
    rows: dict[Path, list[np.ndarray]] = {}
    tile_w = min(200, _MAX_SHEET_WIDTH_PX // (len(columns) + 1))
    tile_h = round(tile_w * 0.75)
    for outcome in outcomes:
        source = outcome.task.source
        tiles = rows.setdefault(source, [_tile_from_file(source, source.name, tile_w, tile_h)])
        for output in outcome.task.outputs:
            if outcome.error:
                tiles.append(_failed_tile(f"failed: {outcome.error.split(':')[0]}", tile_w, tile_h))
            else:
                tiles.append(_tile_from_file(output, "", tile_w, tile_h))
    header = np.hstack([header_tile(name, tile_w) for name in ["input", *columns]])
    sheet = np.vstack([header, *(np.hstack(tiles) for tiles in rows.values())])
    fmt = {".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}.get(path.suffix.lower(), "png")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_image(sheet, fmt))


def _tile_from_file(path: Path, label: str, tile_w: int, tile_h: int) -> np.ndarray:
    try:
        decoded = decode_image(path.read_bytes(), SHEET_LIMITS)
    except (OSError, ReplateError):
        return _failed_tile(f"{label}: unreadable" if label else "unreadable", tile_w, tile_h)
    pixels = decoded.rgb if decoded.alpha is None else over_checkerboard(decoded.rgb, decoded.alpha)
    return labelled_tile(pixels, label, tile_w, tile_h)


def _failed_tile(label: str, tile_w: int, tile_h: int) -> np.ndarray:
    return labelled_tile(np.full((tile_h, tile_w, 3), 96, dtype=np.uint8), label, tile_w, tile_h)
