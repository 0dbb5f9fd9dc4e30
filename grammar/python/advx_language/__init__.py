"""advx's language for Python's tools.

- `lexer`: the Pygments lexer (`advx`), which the kernel names as its
  `pygments_lexer`, so that nbconvert highlights advx notebooks.
- `papermill`: papermill's parameters for notebooks on advx's kernel.
"""
