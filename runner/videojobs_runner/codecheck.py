"""Static safety check for LLM-written Manim scene code, run before anything executes it."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

ALLOWED_MODULES = frozenset(
    {
        "manim",
        "numpy",
        "math",
        "random",
        "itertools",
        "functools",
        "colour",
        "typing",
        "dataclasses",
        "collections",
        "fractions",
        "decimal",
        "statistics",
        "string",
        "enum",
        "manim_voiceover",
    }
)

FORBIDDEN_BUILTINS = frozenset(
    {
        "open",
        "exec",
        "eval",
        "compile",
        "__import__",
        "globals",
        "locals",
        "vars",
        "getattr",
        "setattr",
        "delattr",
        "breakpoint",
        "input",
        "help",
        "exit",
        "quit",
        "memoryview",
    }
)

FORBIDDEN_MODULES = frozenset(
    {
        "os",
        "sys",
        "subprocess",
        "shutil",
        "socket",
        "pathlib",
        "importlib",
        "ctypes",
        "pickle",
        "marshal",
        "builtins",
        "io",
        "signal",
        "threading",
        "multiprocessing",
        "asyncio",
        "urllib",
        "http",
        "requests",
    }
)

INTROSPECTION_ATTRIBUTES = frozenset(
    {
        "f_globals",
        "f_locals",
        "f_back",
        "f_builtins",
        "gi_frame",
        "cr_frame",
        "ag_frame",
        "tb_frame",
        "co_code",
        "func_globals",
    }
)

FILE_IO_ATTRIBUTES = frozenset(
    {
        "load",
        "loadtxt",
        "save",
        "savez",
        "savez_compressed",
        "savetxt",
        "fromfile",
        "tofile",
        "genfromtxt",
        "fromregex",
        "memmap",
        "open_memmap",
        "ctypeslib",
        "f2py",
        "DataSource",
    }
)

ALLOWED_DUNDER_ATTRIBUTES = frozenset({"__init__"})

NO_SCENE_MESSAGE = (
    "No scene class found: define one top-level class deriving from Scene (or another Manim scene base "
    "such as MovingCameraScene) with a construct(self) method."
)

_ALLOWED_LIST = ", ".join(sorted(ALLOWED_MODULES))


@dataclass(frozen=True)
class CodeCheck:
    """The result of checking one scene file: its scene class (if found) and every problem, by line."""

    scene_class: str | None
    issues: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the code may be rendered."""
        return not self.issues and self.scene_class is not None


def check_scene_code(source: str) -> CodeCheck:
    """Check untrusted scene code against the sandbox rules without running it."""
    try:
        tree = ast.parse(source, filename="scene.py")
    except SyntaxError as error:
        return CodeCheck(None, [f"Line {error.lineno or 0}: syntax error: {error.msg}."])
    except (RecursionError, MemoryError, ValueError):
        return CodeCheck(None, ["The code is nested too deeply to be parsed; write simpler expressions."])
    issues: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        issues.extend(_node_issues(node))
    scene_class, scene_issues = _find_scene_class(tree)
    issues.extend(scene_issues)
    unique = sorted(set(issues))
    return CodeCheck(
        scene_class, [f"Line {line}: {message}" if line else message for line, message in unique]
    )


def _node_issues(node: ast.AST) -> list[tuple[int, str]]:
    """Rule violations of a single AST node."""
    line = getattr(node, "lineno", 0)
    if isinstance(node, ast.Import):
        return [(line, msg) for alias in node.names if (msg := _import_issue(alias.name, 0))]
    if isinstance(node, ast.ImportFrom):
        message = _import_issue(node.module or "", node.level)
        return [(line, message)] if message else []
    if isinstance(node, ast.Name):
        message = _name_issue(node.id)
        return [(line, message)] if message else []
    if isinstance(node, ast.Attribute):
        message = _attribute_issue(node.attr)
        return [(line, message)] if message else []
    return []


def _import_issue(module: str, level: int) -> str:
    """Why importing `module` is not allowed, or '' when it is."""
    if level:
        return f"relative imports are not allowed; import only from: {_ALLOWED_LIST}."
    root = module.split(".")[0]
    if root in ALLOWED_MODULES:
        return ""
    return f"importing '{module}' is not allowed; import only from: {_ALLOWED_LIST}."


def _name_issue(name: str) -> str:
    """Why using the bare name `name` is not allowed, or '' when it is."""
    if name in FORBIDDEN_BUILTINS:
        return f"'{name}' is not allowed in scene code; Manim scenes need no file, code or attribute tricks."
    if name in FORBIDDEN_MODULES:
        return f"'{name}' is not allowed in scene code; it gives access to the system. Rename or remove it."
    if name == "__name__":
        return (
            "'__name__' is not allowed; remove any `if __name__ == \"__main__\":` block "
            "(the scene is rendered for you)."
        )
    if _is_dunder(name):
        return f"'{name}' is not allowed; scene code may not use double-underscore names."
    return ""


def _attribute_issue(attr: str) -> str:
    """Why accessing the attribute `.attr` is not allowed, or '' when it is."""
    if _is_dunder(attr) and attr not in ALLOWED_DUNDER_ATTRIBUTES:
        return f"attribute '.{attr}' is not allowed; scene code may not use double-underscore attributes."
    if attr in INTROSPECTION_ATTRIBUTES:
        return f"attribute '.{attr}' is not allowed; scene code may not inspect frames or code objects."
    if attr in FILE_IO_ATTRIBUTES:
        return f"attribute '.{attr}' is not allowed; scene code may not read or write files or use FFI."
    bare = attr.lstrip("_")
    if bare in FORBIDDEN_BUILTINS or bare in FORBIDDEN_MODULES:
        return f"attribute '.{attr}' is not allowed; it gives access to files, code or the system."
    return ""


def _is_dunder(name: str) -> bool:
    """Whether `name` looks like `__this__`."""
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _find_scene_class(tree: ast.Module) -> tuple[str | None, list[tuple[int, str]]]:
    """The single top-level scene class to render, and the problems with how scene classes are defined.

    A scene class that another scene class of the file derives from is a base, not the scene: only the
    most derived scene classes count, and one of them may inherit construct() from a base in the file.
    """
    scenes = _scene_classes(tree)
    if not scenes:
        return None, [(0, NO_SCENE_MESSAGE)]
    bases = {name for node in scenes.values() for name in _base_names(node)}
    leaves = [node for node in scenes.values() if node.name not in bases]
    if len(leaves) > 1:
        names = ", ".join(f"{node.name} (line {node.lineno})" for node in leaves)
        message = (
            f"Found {len(leaves)} scene classes ({names}); define exactly one, merging the others into it."
        )
        return None, [(leaves[1].lineno, message)]
    scene = leaves[0] if leaves else next(iter(scenes.values()))
    if _has_construct(scene, scenes):
        return scene.name, []
    return scene.name, [(scene.lineno, f"Scene class '{scene.name}' has no construct(self) method.")]


def _scene_classes(tree: ast.Module) -> dict[str, ast.ClassDef]:
    """The top-level classes deriving from a Manim scene base or from a scene class defined before them."""
    scenes: dict[str, ast.ClassDef] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
            name.endswith("Scene") or name in scenes for name in _base_names(node)
        ):
            scenes[node.name] = node
    return scenes


def _base_names(node: ast.ClassDef) -> list[str]:
    """The names of a class's bases (`Scene` for both `Scene` and `manim.Scene`)."""
    return [base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "") for base in node.bases]


def _has_construct(scene: ast.ClassDef, scenes: dict[str, ast.ClassDef]) -> bool:
    """Whether the class, or a scene class of the file it derives from, defines construct()."""
    pending, seen = [scene], set()
    while pending:
        node = pending.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        if any(
            isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == "construct"
            for item in node.body
        ):
            return True
        pending.extend(scenes[name] for name in _base_names(node) if name in scenes)
    return False
