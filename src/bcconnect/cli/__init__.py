"""The ``bcconnect`` command line. Nothing imports this package; it imports whatever it drives."""
