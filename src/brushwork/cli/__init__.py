"""Command-line interface (``brushwork``)."""
