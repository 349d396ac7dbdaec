"""The `videojobs` command line: on top of every part (runner, API, operator), used by none of them."""
