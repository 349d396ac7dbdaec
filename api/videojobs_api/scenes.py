"""A job's scenes as its storage tells them: titles from the outline, states from each scene's files."""

from __future__ import annotations

from dataclasses import dataclass

from videojobs.artifacts import OUTLINE_FILE, JobArtifacts, SceneFiles, code_versions_among
from videojobs.contract import Phase
from videojobs.plans import VideoOutline
from videojobs.storage import Storage
from videojobs_api.models import SceneList, SceneResponse, SceneState, StoredJob, scene_thumbnail_path


@dataclass(frozen=True)
class StoredScene:
    """What storage holds of one scene of the outline."""

    index: int
    title: str
    rendered: bool
    code_versions: int
    last_failed: bool
    """Its newest code version failed its check or render."""
    thumbnail: bool

    def state(self, phase: Phase) -> SceneState:
        """How far the scene got, in a job of this phase."""
        if self.rendered:
            return SceneState.RENDERED
        if self.code_versions and phase is Phase.RUNNING:
            return SceneState.RENDERING
        return SceneState.FAILED if self.last_failed else SceneState.PLANNED


def stored_scenes(storage: Storage, storage_key: str) -> list[StoredScene]:
    """The outline's scenes with what storage holds of each; empty before the outline (blocking I/O)."""
    artifacts = JobArtifacts(storage, storage_key)
    outline = artifacts.load_model(OUTLINE_FILE, VideoOutline)
    if outline is None:
        return []
    keys = storage.list_keys(artifacts.key("scenes/"))
    scenes = []
    for index, scene in enumerate(outline.scenes, 1):
        files = SceneFiles(index)
        folder = artifacts.key(files.folder) + "/"
        held = {key for key in keys if key.startswith(folder)}
        versions = code_versions_among(held)
        scenes.append(
            StoredScene(
                index=index,
                title=scene.title,
                rendered=artifacts.key(files.render) in held,
                code_versions=len(versions),
                last_failed=bool(versions) and artifacts.key(files.error(versions[-1])) in held,
                thumbnail=artifacts.key(files.thumbnail) in held,
            )
        )
    return scenes


def scene_list(job: StoredJob, scenes: list[StoredScene]) -> SceneList:
    """The REST view of a job's stored scenes."""
    return SceneList(
        data=[
            SceneResponse(
                index=scene.index,
                title=scene.title,
                state=scene.state(job.status.phase),
                code_versions=scene.code_versions,
                thumbnail=scene_thumbnail_path(job.id, scene.index) if scene.thumbnail else None,
            )
            for scene in scenes
        ]
    )
