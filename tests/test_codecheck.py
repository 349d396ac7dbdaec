"""The static check rejects hostile scene code with useful messages and accepts normal Manim scenes."""

from __future__ import annotations

import textwrap

import pytest

from videojobs_runner.codecheck import check_scene_code


def scene(body: str, header: str = "from manim import *") -> str:
    """A one-scene module whose construct() runs `body`."""
    indented = textwrap.indent(textwrap.dedent(body).strip(), " " * 8)
    return f"{header}\n\nclass Demo(Scene):\n    def construct(self):\n{indented}\n"


GOOD_SCENES = {
    "basic": scene(
        """
        circle = Circle(color=BLUE)
        self.play(Create(circle), run_time=1)
        self.wait(0.5)
        """
    ),
    "math_and_numpy": scene(
        """
        axes = Axes(x_range=[-3, 3], y_range=[-1, 1])
        graph = axes.plot(lambda x: np.sin(x) * math.cos(x))
        title = MathTex(r"\\sin x \\cos x").to_edge(UP)
        self.play(Create(axes), Create(graph), Write(title))
        """,
        header="from manim import *\nimport numpy as np\nimport math\nfrom typing import Any",
    ),
    "helper_class_and_super_init": """
from manim import *
import random
from dataclasses import dataclass

@dataclass
class Point:
    x: float
    y: float

class Dot3(VGroup):
    def __init__(self, **kwargs):
        super().__init__(*[Dot() for _ in range(3)], **kwargs)
        self.arrange(RIGHT)

class Explainer(MovingCameraScene):
    def construct(self):
        dots = Dot3()
        self.play(FadeIn(dots))
        self.play(self.camera.frame.animate.scale(0.5))
""",
    "voiceover": """
from manim import *
from manim_voiceover import VoiceoverScene

class Narrated(VoiceoverScene):
    def construct(self):
        self.play(Create(Square()))
""",
}


@pytest.mark.parametrize("source", GOOD_SCENES.values(), ids=GOOD_SCENES.keys())
def test_normal_scenes_are_accepted(source: str) -> None:
    result = check_scene_code(source)
    assert result.ok, result.issues
    assert result.issues == []
    assert result.scene_class is not None


def test_scene_class_name_is_found() -> None:
    assert check_scene_code(GOOD_SCENES["helper_class_and_super_init"]).scene_class == "Explainer"


HOSTILE = [
    ("import_os", scene("self.wait()", header="from manim import *\nimport os"), "'os'", 2),
    ("import_subprocess", scene("subprocess.run(['id'])", "import subprocess"), "'subprocess'", 1),
    ("from_socket", scene("socket(AF_INET)", "from socket import *\nfrom manim import *"), "'socket'", 1),
    ("import_os_path", scene("self.wait()", "import os.path\nfrom manim import *"), "'os.path'", 1),
    ("open_passwd", scene("data = open('/etc/passwd').read()"), "'open'", 5),
    ("dunder_import", scene("__import__('os').system('id')"), "'__import__'", 5),
    ("getattr_builtins", scene("getattr(__builtins__, 'open')"), "'getattr'", 5),
    ("getattr_builtins_dunder", scene("getattr(__builtins__, 'open')"), "'__builtins__'", 5),
    ("subclasses", scene("().__class__.__bases__[0].__subclasses__()"), "'.__class__'", 5),
    ("subclasses_bases", scene("().__class__.__bases__[0].__subclasses__()"), "'.__subclasses__'", 5),
    (
        "np_load",
        scene("data = np.load('/etc/x.npy')", "from manim import *\nimport numpy as np"),
        "'.load'",
        6,
    ),
    (
        "np_tofile",
        scene("np.zeros(3).tofile('/tmp/x')", "import numpy as np\nfrom manim import *"),
        "'.tofile'",
        6,
    ),
    ("exec", scene('exec("import os")'), "'exec'", 5),
    ("eval", scene('x = eval("1 + 1")'), "'eval'", 5),
    ("globals", scene("globals()['x'] = 1"), "'globals'", 5),
    ("frame_walk", scene("g = (x for x in []).gi_frame.f_back.f_globals"), "'.gi_frame'", 5),
    ("private_os_attr", scene("random._os.system('id')", "from manim import *\nimport random"), "'._os'", 6),
    ("dunder_file", scene("self.add(Text(__file__))"), "'__file__'", 5),
    ("relative_import", scene("self.wait()", "from . import secrets\nfrom manim import *"), "relative", 1),
    ("importlib", scene("self.wait()", "import importlib\nfrom manim import *"), "'importlib'", 1),
]


@pytest.mark.parametrize(
    ("source", "expected", "line"), [case[1:] for case in HOSTILE], ids=[c[0] for c in HOSTILE]
)
def test_hostile_code_is_rejected(source: str, expected: str, line: int) -> None:
    result = check_scene_code(source)
    assert not result.ok
    matching = [issue for issue in result.issues if expected in issue]
    assert matching, result.issues
    assert matching[0].startswith(f"Line {line}:"), matching


def test_two_scene_classes_are_rejected() -> None:
    source = GOOD_SCENES["basic"] + "\nclass Other(ThreeDScene):\n    def construct(self):\n        pass\n"
    result = check_scene_code(source)
    assert not result.ok
    assert any("exactly one" in issue and "Demo" in issue and "Other" in issue for issue in result.issues)


SCENE_BASE = """from manim import *

class Styled(Scene):
    def setup(self):
        self.camera.background_color = WHITE
"""


def test_a_scene_deriving_from_a_scene_class_of_the_file_is_the_scene() -> None:
    source = SCENE_BASE + "\nclass Lesson(Styled):\n    def construct(self):\n        self.add(Circle())\n"
    result = check_scene_code(source)
    assert result.ok, result.issues
    assert result.scene_class == "Lesson"


def test_construct_may_come_from_a_scene_base_of_the_file() -> None:
    source = (
        "from manim import *\n\nclass Template(Scene):\n    def construct(self):\n        self.build()\n\n"
        "class Lesson(Template):\n    def build(self):\n        self.add(Square())\n"
    )
    result = check_scene_code(source)
    assert result.ok, result.issues
    assert result.scene_class == "Lesson"


def test_two_scenes_on_one_scene_base_are_rejected() -> None:
    source = SCENE_BASE + "".join(
        f"\nclass {name}(Styled):\n    def construct(self):\n        pass\n" for name in ("First", "Second")
    )
    result = check_scene_code(source)
    assert not result.ok
    assert any("exactly one" in issue and "First" in issue and "Second" in issue for issue in result.issues)
    assert not any("Styled" in issue for issue in result.issues)


def test_no_scene_class_is_rejected() -> None:
    result = check_scene_code("from manim import *\n\nclass Helper(VGroup):\n    pass\n")
    assert not result.ok
    assert result.scene_class is None
    assert any("No scene class" in issue for issue in result.issues)


def test_scene_without_construct_is_rejected() -> None:
    result = check_scene_code(
        "from manim import *\n\nclass Demo(Scene):\n    def setup(self):\n        pass\n"
    )
    assert not result.ok
    assert any("construct" in issue and issue.startswith("Line 3:") for issue in result.issues)


def test_syntax_error_reports_its_line() -> None:
    result = check_scene_code(
        "from manim import *\n\nclass Demo(Scene):\n    def construct(self)\n        pass\n"
    )
    assert not result.ok
    assert result.scene_class is None
    assert len(result.issues) == 1
    assert result.issues[0].startswith("Line 4: syntax error")


def test_main_guard_gets_a_hint() -> None:
    source = GOOD_SCENES["basic"] + '\nif __name__ == "__main__":\n    Demo().render()\n'
    issues = check_scene_code(source).issues
    assert issues == [
        "Line 9: '__name__' is not allowed; remove any `if __name__ == \"__main__\":` block "
        "(the scene is rendered for you)."
    ]


@pytest.mark.parametrize("source", ["x = " + "a." * 100_000 + "b", "x = " + "-" * 100_000 + "1"])
def test_absurdly_nested_code_is_rejected_not_crashing(source: str) -> None:
    result = check_scene_code(source)
    assert not result.ok
    assert "nested too deeply" in result.issues[0]


def test_issues_are_reported_once_per_line_in_line_order() -> None:
    source = scene("open('a'); open('b')\nexec('x')", header="import os\nfrom manim import *")
    issues = check_scene_code(source).issues
    assert len(issues) == 3
    assert [issue.split(":")[0] for issue in issues] == ["Line 1", "Line 6", "Line 7"]
