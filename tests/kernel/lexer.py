"""The Pygments lexer of grammar/python against advx itself.

Usage: lexer.py WORDS_JSON SCRIPT...: WORDS_JSON holds advx's keywords and
operations (tests/kernel.rs writes them from the library); every SCRIPT
must lex without an error token, with its keywords and operations coloured.
"""
import json
import sys

from pygments import highlight, lex
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import Error, Keyword, Name

from advx_language import lexer as advx_lexer

words = json.loads(sys.argv[1])
lexer = get_lexer_by_name("advx")
assert isinstance(lexer, advx_lexer.AdvxLexer), "the entry point `advx` is not advx's lexer"
known = set(advx_lexer.KEYWORDS) | set(advx_lexer.CONSTANTS)
assert known == set(words["keywords"]), f"keywords differ from advx's: {sorted(known ^ set(words['keywords']))}"
assert set(advx_lexer.OPERATIONS) == set(words["operations"]), \
    f"operations differ from advx's: {sorted(set(advx_lexer.OPERATIONS) ^ set(words['operations']))}"
print(f"ok: the lexer knows advx's {len(known)} keywords and {len(words['operations'])} operations")

for path in sys.argv[2:]:
    tokens = list(lex(open(path, encoding="utf-8").read(), lexer))
    errors = [value for kind, value in tokens if kind in Error]
    assert not errors, f"{path}: error tokens {errors[:5]}"
    assert any(kind in Keyword for kind, _ in tokens), f"{path}: no keyword highlighted"
print(f"ok: {len(sys.argv) - 2} scripts lex without errors")

html = highlight('let a = lbfgs fc100 on mnist.test { steps: 3 } # attack', lexer, HtmlFormatter())
for fragment in ['<span class="k">let</span>', '<span class="nb">lbfgs</span>', '<span class="c1"># attack</span>']:
    assert fragment in html, f"{fragment} not in {html}"
print("ok: HTML highlighting marks keywords, operations and comments")
