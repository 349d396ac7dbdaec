# ruff: noqa
# class: private-alias
# tries: `from enum import bltns` (enum's alias of builtins), import sqlite3 with it and create a
#   database outside the work dir: the file is written by SQLite's C code.
from manim import *
from enum import bltns


class Escape(Scene):
    def construct(self):
        sqlite = bltns.__import__("sqlite3")
        connection = sqlite.connect("__MARKER_DIR__/from_import_enum_builtins_sqlite.db")
        connection.execute("create table escaped (x)")
        connection.commit()
        connection.close()
        self.play(FadeIn(Dot()), run_time=0.2)
