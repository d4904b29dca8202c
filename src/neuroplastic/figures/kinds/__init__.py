"""One module per figure/table kind; each defines `KIND = FigureKind(...)` and is registered by
`neuroplastic.figures` (modules whose name starts with `_` are helpers, not kinds)."""
