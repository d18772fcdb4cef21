"""One option set everywhere: every option of ``options.ENCODE_OPTIONS`` and ``DECODE_OPTIONS``
on each surface -- the ``cgdm`` command, ``cgdm_codec.encode``/``decode``, the Pillow plugin and
the distributed runner's command line.

For each (option, surface): either the surface offers the option, takes its example value
(a real encode or decode of a small card, AV1 base) and refuses a bad value with the same
check (ConfigError, or a usage error, exit 2); or the table declares, with a reason, that the
surface has no place for it, and the surface indeed does not take it. The distributed runner
is checked through its parser and the job it builds, run by its worker function in this
process (no Dask cluster).

The options are the fields of ``EncodeSettings`` and ``DecodeSettings``; the last tests show
that a new one is a field and nothing more: every surface builds its options from the fields.
"""

from __future__ import annotations

import inspect
import pickle
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from PIL import Image

import cgdm_codec
import cgdm_codec.pillow as plugin
from cgdm_codec import distributed as cd
from cgdm_codec import pipeline
from cgdm_codec.api import decode_with, settings_from, settings_keywords
from cgdm_codec.cli import DecodeJob, main
from cgdm_codec.cli.commands import settings_options
from cgdm_codec.container import Limits
from cgdm_codec.errors import ConfigError
from cgdm_codec.options import (DECODE_OPTIONS, ENCODE_OPTIONS, SURFACES, DecodeSettings, EncodeSettings, Option,
                                command_line, option, option_table, surface_options)
from conftest import textured

CASES = [("encode", o) for o in ENCODE_OPTIONS] + [("decode", o) for o in DECODE_OPTIONS]
#: Options whose example needs another option beside it to make sense.
COMPANIONS: dict[tuple[str, str], dict[str, Any]] = {("decode", "output_quality"): {"fmt": "webp"}}
#: Keeps the many small encodes quick; left out where the option under test is effort itself.
FAST = {"effort": "fast"}


@pytest.fixture(autouse=True)
def av1_base(monkeypatch):
    monkeypatch.setenv("CGDM_BASE", "av1")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    """A small card and its file with a diffusion stage (so that --steps and --realism act)."""
    d = tmp_path_factory.mktemp("options")
    png = d / "card.png"
    Image.fromarray(textured(24, 32)).save(png)
    cg = d / "card.cgdm"
    cg.write_bytes(cgdm_codec.encode(png, base="av1", diffusion=True, effort="fast"))
    return png, cg


def settings_for(command: str, option: Option) -> dict[str, Any]:
    """The example of ``option`` with its companions (and, for encodes, the fast effort)."""
    base = dict(FAST) if command == "encode" and option.name != "effort" else {}
    return {**base, **COMPANIONS.get((command, option.name), {}), option.name: option.example}


def words(option: Option, value: Any) -> list[str]:
    """``option`` set to ``value`` on a command line."""
    if option.count:
        return [option.short or option.flag_name] * int(value)
    if option.flag:
        return [option.flag_name] if value != option.default else []
    return [option.flag_name, str(value)]


def argv(command: str, settings: dict[str, Any]) -> list[str]:
    table = {o.name: o for o in (ENCODE_OPTIONS if command == "encode" else DECODE_OPTIONS)}
    return [w for name, value in settings.items() for w in words(table[name], value)]


def bad_value(option: Option) -> Any:
    """A value the option's check refuses (None: a bare flag has none on a command line)."""
    if option.flag or option.count:
        return None
    if option.choices or option.validate:
        return "bogus"
    return option.high + 1 if option.high is not None else option.low - (0 if option.open_low else 1)


# ----------------------------------------------------------------- what each surface offers

@lru_cache(maxsize=None)
def cli_help(command: str) -> str:
    return CliRunner().invoke(main, [command, "--help"]).output


def offered(surface: str, command: str, option: Option) -> bool:
    """Whether the surface takes the option, found from the surface itself, not the table."""
    if surface == "cli":
        return f"{option.flag_name} " in cli_help(command) or f"{option.flag_name}\n" in cli_help(command)
    if surface == "api":
        return option.name in inspect.signature(getattr(cgdm_codec, command)).parameters
    if surface == "pillow":
        return option.name in (plugin.SAVE_OPTIONS if command == "encode" else plugin.DECODE_OPTIONS)
    action = cd._parser()._option_string_actions.get(option.flag_name)
    return action is not None and action.dest == option.name


# ----------------------------------------------------------------- a run on each surface

def run_cli(command: str, option: Option, files: tuple[Path, Path], tmp_path: Path, value: Any) -> Any:
    png, cg = files
    settings = {**settings_for(command, option), option.name: value}
    out = [str(tmp_path / "c.cgdm")] if command == "encode" else [f"{tmp_path}/out/"]
    return CliRunner().invoke(main, [command, str(png if command == "encode" else cg), "-o", *out,
                                     *argv(command, settings)])


def run_api(command: str, option: Option, files: tuple[Path, Path], tmp_path: Path, value: Any) -> Any:
    png, cg = files
    settings = {**settings_for(command, option), option.name: value}
    return cgdm_codec.encode(png, **settings) if command == "encode" else cgdm_codec.decode(cg, **settings)


def run_pillow(command: str, option: Option, files: tuple[Path, Path], tmp_path: Path, value: Any) -> Any:
    png, cg = files
    settings = {**settings_for(command, option), option.name: value}
    if command == "encode":
        with Image.open(png) as im:
            im.save(tmp_path / "p.cgdm", **settings)
        return (tmp_path / "p.cgdm").read_bytes()
    with Image.open(cg) as im:
        im.decode_options.update(settings)
        im.load()
        return im.copy()


def run_distributed(command: str, option: Option, files: tuple[Path, Path], tmp_path: Path) -> cd.FileResult:
    """The runner's command line parsed, its job planned and run by the worker's function."""
    png, cg = files
    inv = cd.parse_command([command, str(png if command == "encode" else cg), "-o", str(tmp_path / "d"),
                            *argv(command, settings_for(command, option))])
    if option.name in cd.OWN_OPTIONS:  # the runner's own: -Q and the size limits
        assert (inv.quiet if option.name == "quiet" else getattr(inv.limits, option.name)) == option.example
    else:
        assert inv.settings[option.name] == option.example
    jobs = cd.plan(command, cd.expand_inputs(inv.inputs, command), Path(inv.output), limits=inv.limits,
                   **inv.settings)
    (tmp_path / "d").mkdir()
    return (cd.encode_task if command == "encode" else cd.decode_task)(jobs[0])


def check_runs(surface: str, command: str, option: Option, files: tuple[Path, Path], tmp_path: Path,
               capsys: pytest.CaptureFixture) -> None:
    """The example works on the surface, and a bad value is refused by the shared check."""
    bad = bad_value(option)
    if surface == "cli":
        res = run_cli(command, option, files, tmp_path, option.example)
        assert res.exit_code == 0, res.output
        if bad is not None:
            res = run_cli(command, option, files, tmp_path / "bad", bad)
            assert res.exit_code == 2 and option.flag_name in res.output, res.output
    elif surface in ("api", "pillow"):
        run = run_api if surface == "api" else run_pillow
        assert run(command, option, files, tmp_path, option.example) is not None
        with pytest.raises(ConfigError):
            run(command, option, files, tmp_path, "yes" if bad is None else bad)
    else:
        result = run_distributed(command, option, files, tmp_path)
        assert result.ok, result.error
        if bad is not None:
            with pytest.raises(SystemExit) as e:
                cd.parse_command([command, "x", "-o", "y", *words(option, bad)])
            err = capsys.readouterr().err.strip()
            assert e.value.code == 2 and err.startswith("cgdm: error:") and "\n" not in err, err


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("command, option", CASES, ids=[f"{c}-{o.name}" for c, o in CASES])
def test_every_option_on_every_surface(command, option, surface, files, tmp_path, capsys):
    if option.offered_on(surface):
        assert offered(surface, command, option), f"{option.name} is missing from {surface} {command}"
        assert option.example is not None and option.example != option.default, "the table needs an example"
        check_runs(surface, command, option, files, tmp_path, capsys)
    else:  # an exemption is declared with its reason, and the surface really lacks the option
        assert len(option.not_on[surface]) > 20, option.not_on
        assert not offered(surface, command, option), f"{option.name} is offered by {surface} though exempt"


def test_the_tables_name_only_known_surfaces():
    for _, option in CASES:
        assert set(option.not_on) <= set(SURFACES), option


# ----------------------------------------------------------------- one declaration per option

@pytest.mark.parametrize("cls", [EncodeSettings, DecodeSettings])
def test_every_field_is_an_option_of_every_surface(cls):
    """Each field of a settings class is on each surface -- found from the surface itself --
    unless its ``not_on`` says why: no surface keeps a list of its own."""
    command = "encode" if cls is EncodeSettings else "decode"
    for f in fields(cls):
        setting = option_table(cls)[f.name]
        for surface in SURFACES:
            assert offered(surface, command, setting) == setting.offered_on(surface), (f.name, surface)


@dataclass(frozen=True, kw_only=True)
class Sharper(DecodeSettings):
    """A decode option that does not exist, declared as a new one is: one field."""

    sharpen: float = option(0.0, "Sharpen the output by this much.", low=0, high=1, real=True,
                            metavar="0..1", example=0.5)


def test_a_new_decode_option_is_one_field(monkeypatch):
    """What ``Sharper`` adds reaches every surface through the builders the real commands use
    (``cgdm decode``, ``cgdm_codec.decode``, the Pillow plugin, the distributed runner), is
    checked on construction in the words of every option, and travels whole, in the job and
    down to the pipeline's decode, which reads it by its name."""
    new = option_table(Sharper)["sharpen"]
    assert all(new in surface_options(Sharper, surface) for surface in SURFACES)
    assert Sharper(sharpen=1).sharpen == 1.0 and isinstance(Sharper(sharpen=1).sharpen, float)
    with pytest.raises(ConfigError, match=r"^sharpen must be a number in 0..1, got 2$"):
        Sharper(sharpen=2)

    @click.command()
    @settings_options(Sharper)
    def cli(**given: Any) -> None:  # as cgdm decode is built
        click.echo(repr(Sharper.of(given, command_line).sharpen))

    assert CliRunner().invoke(cli, ["--sharpen", "0.5"]).output == "0.5\n"
    refused = CliRunner().invoke(cli, ["--sharpen", "2"])
    assert refused.exit_code == 2 and "--sharpen" in refused.output

    @settings_keywords(Sharper)
    def api(data: bytes, *, progress: Any = None, **options: Any) -> Sharper:  # as cgdm_codec.decode is
        return settings_from(Sharper, "api", options)

    assert inspect.signature(api).parameters["sharpen"].default == 0.0
    assert api(b"", sharpen=0.5).sharpen == 0.5
    with pytest.raises(ConfigError, match="sharpen must be"):
        api(b"", sharpen=-1)

    parser = cd._Parser()
    cd._add_option(parser, new, new.help)  # as the runner adds each field it offers
    assert vars(parser.parse_args(["--sharpen", "0.5"])) == {"sharpen": 0.5}

    job = DecodeJob(Path("a.cgdm"), Path("a.png"), "PNG", Sharper(sharpen=0.5), Limits())
    assert pickle.loads(pickle.dumps(job)).settings.sharpen == 0.5  # to the workers, then the decoder

    seen: list[Any] = []
    monkeypatch.setattr(pipeline, "decode_image", lambda f, settings, **_: seen.append(settings))
    decode_with(None, job.settings)  # the decode of cgdm decode, cgdm_codec.decode and the plugin
    assert seen[0].sharpen == 0.5


def test_the_plugin_offers_the_fields():
    assert plugin.DECODE_OPTIONS == {o.name: o.default for o in surface_options(DecodeSettings, "pillow")}
    assert plugin.SAVE_OPTIONS == tuple(o.name for o in surface_options(EncodeSettings, "pillow"))


def test_constructing_settings_checks_them():
    with pytest.raises(ConfigError, match=r"^quality and size each choose the quality: give one$"):
        EncodeSettings(quality=2, size=3000)
    with pytest.raises(ConfigError, match=r"^-q and --size each choose the quality: give one$"):
        EncodeSettings.of({"quality": 2, "size": 3000}, command_line)
    with pytest.raises(ConfigError, match=r"^realism sets the diffusion stage, which base_only skips: give one"):
        DecodeSettings(base_only=True, realism=0.5)
    with pytest.raises(ConfigError, match=r"^'sharp' is not a decode option \(the options: fmt, base_only, "):
        DecodeSettings.of({"sharp": 1})
    assert EncodeSettings().level == 3 and EncodeSettings(base_only=True).diffusion_stage is False
