"""The Pygments lexer of advx scripts (grammar/advx.ebnf).

Registered under the name `advx`, the kernel's `pygments_lexer`, so that
nbconvert highlights advx notebooks. OPERATIONS must list advx's built-in
operations (`advx check --ops`); tests/kernel.rs checks that it does.
"""
from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text, Whitespace

__all__ = ["AdvxLexer", "KEYWORDS", "OPERATIONS"]

KEYWORDS = ("let", "param", "model", "show", "save", "onnx", "where", "and", "or", "not", "in")
CONSTANTS = ("true", "false")
OPERATIONS = (
    "evaluate", "predict", "grid", "histogram", "line", "bar", "lbfgs", "transfer", "gaussian",
    "magnify", "lipschitz", "units", "visualize", "numpy", "images",
)
DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100")


class AdvxLexer(RegexLexer):
    name = "advx"
    aliases = ["advx"]
    filenames = ["*.advx"]
    mimetypes = ["text/x-advx"]
    url = "https://github.com/advx/advx"

    tokens = {
        "root": [
            (r"^(# %%)(.*)$", bygroups(Comment.Special, Comment.Preproc)),
            (r"#.*$", Comment.Single),
            (r'"', String.Double, "string"),
            (r"\s+", Whitespace),
            (words(KEYWORDS, suffix=r"\b"), Keyword),
            (words(CONSTANTS, suffix=r"\b"), Keyword.Constant),
            (words(OPERATIONS, suffix=r"\b"), Name.Builtin),
            (words(DATASETS, suffix=r"\b"), Name.Variable.Global),
            (r"([A-Za-z_]\w*)(\s*)(:)", bygroups(Name.Attribute, Whitespace, Punctuation)),
            (r"(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", Number),
            (r"\.\.|==|!=|<=|>=|[-+*/<>=]", Operator),
            (r"[()\[\]{},;.]", Punctuation),
            (r"[A-Za-z_]\w*", Name),
            (r".", Text),
        ],
        "string": [
            (r'\\.', String.Escape),
            (r'"', String.Double, "#pop"),
            (r'[^"\\\n]+', String.Double),
            (r"\n", Text, "#pop"),
        ],
    }
