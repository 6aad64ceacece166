"""Environment key constants that carry their own flags."""


class EnvKey(str):
    """An environment key name (a plain str) with its flags.

    answer_file: written to answer files.
    preview: label in the configuration preview (None: not shown).
    secret: its value is filtered from logs and never written to answer files.
    validator: callable(value) raising ValueError with the reason when invalid
        (applied to values from answer files and the command line).
    kind: the type its value must have when given in an answer file or on the command line
        ('bool', 'int', 'str' or 'multi-str'; None: any), so that ``KEY=str:No`` for a bool
        key is an error rather than a true value.
    preview_text: callable(value) -> the text the preview shows (None: the value itself).
    """

    def __new__(cls, name, answer_file=False, preview=None, secret=False, validator=None,
                kind=None, preview_text=None):
        self = str.__new__(cls, name)
        self.answer_file = answer_file and not secret
        self.preview = preview
        self.secret = secret
        self.validator = validator
        self.kind = kind
        self.preview_text = preview_text
        return self


def keys_of(*holders):
    """Every EnvKey defined in the given classes, or in the classes of the given modules."""
    out = []
    for holder in holders:
        classes = [holder] if isinstance(holder, type) else [
            v for v in vars(holder).values() if isinstance(v, type)]
        for cls in classes:
            out.extend(v for v in vars(cls).values() if isinstance(v, EnvKey))
    return out
