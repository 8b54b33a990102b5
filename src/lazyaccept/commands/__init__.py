"""One module per subcommand of the ``lazyaccept`` program; :mod:`lazyaccept.cli` registers them."""
