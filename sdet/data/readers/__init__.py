"""One small module per benchmark annotation format; :mod:`sdet.data.formats` is their registry.

Every dataset reader has the signature ``read(root: Path, split: str, problems: Problems)
-> List[Sample]`` and reports each bad line, missing image or missing ground-truth file to
``problems`` (see :mod:`sdet.data.readers.common`), which raises it or, with ``skip_bad``,
skips it with a warning. That single channel is what lets ``sdet data check`` list every
problem of a dataset while training stays strict by default.
"""
