"""papermill's parameters for notebooks on advx's kernel.

papermill writes the values it is given as a new cell after the cell
tagged `parameters`, in the notebook's language: here `param NAME = VALUE`
lines, which rebind the defaults the tagged cell declared (and which
results.yaml then records). papermill finds translators only in its own
registry, and loads the `papermill.engine` entry points when imported: this
module is one, and registers the translator as it loads. Its engine `advx`
is papermill's own nbclient engine under that name.
"""
import math

from papermill.engines import NBClientEngine
from papermill.exceptions import PapermillException
from papermill.translators import Translator, papermill_translators


class AdvxTranslator(Translator):
    """Values as advx literals: numbers, strings, true/false and lists of them."""

    @classmethod
    def translate_float(cls, val):
        if not math.isfinite(val):
            raise PapermillException(f"advx parameters are finite numbers, not {val}")
        return repr(val)

    @classmethod
    def translate_bool(cls, val):
        return "true" if val else "false"

    @classmethod
    def translate_none(cls, val):
        raise PapermillException("advx has no null: give the parameter a number, string, boolean or list")

    @classmethod
    def translate_dict(cls, val):
        raise PapermillException("advx parameters are numbers, strings, booleans or lists, not mappings")

    @classmethod
    def translate_list(cls, val):
        return "[" + ", ".join(cls.translate(v) for v in val) + "]"

    @classmethod
    def comment(cls, cmt_str):
        return f"# {cmt_str}".strip()

    @classmethod
    def assign(cls, name, str_val):
        return f"param {name} = {str_val}"


papermill_translators.register("advx", AdvxTranslator)


class AdvxEngine(NBClientEngine):
    """papermill's nbclient engine, registered under the name `advx`."""
