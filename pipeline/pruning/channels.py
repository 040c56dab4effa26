"""Channel-dependency analysis: which channels must be removed together.

Every position of every tensor's channel axis gets an integer id. Producers
(Conv, Dense...) mint fresh ids; handlers pass, tile, concatenate or unify
them. After the walk, ids joined by couplers are merged (union-find by label
propagation in numpy) into *classes*: a class is one removable channel,
spanning every weight slice in every layer it touches. Classes are gathered
into *groups*: the classes of producers that are coupled (a ResNet stage's
residual stream, a conv and its SE gate) form one group that the selection
ranks and constrains together (DepGraph's channel group).

Classes reaching a model input or output, or an opaque op, are *blocked*:
always kept.
"""
from __future__ import annotations

import dataclasses
import fnmatch
from typing import Sequence

import numpy as np

from pipeline.pruning import handlers
from pipeline.pruning.graph import Graph, Node, layer_paths, read_graph
from pipeline.pruning.handlers.base import WeightAxis, channels


class Tracer:
    """Mints channel ids and records the ties and blocks between them."""

    def __init__(self):
        self.size = 0
        self._pairs: list[tuple[np.ndarray, np.ndarray]] = []
        self._blocked: list[np.ndarray] = []
        self.blocks: list[tuple[str, int, int]] = []  # (producer, start, stop)

    def fresh(self, n: int, owner: str) -> np.ndarray:
        ids = np.arange(self.size, self.size + n, dtype=np.int64)
        self.blocks.append((owner, self.size, self.size + n))
        self.size += n
        return ids

    def fresh_blocked(self, n: int) -> np.ndarray:
        ids = np.arange(self.size, self.size + n, dtype=np.int64)
        self.size += n
        self._blocked.append(ids)
        return ids

    def unify(self, a: np.ndarray, b: np.ndarray) -> None:
        if len(a) != len(b):
            raise ValueError(f"cannot tie {len(a)} channels to {len(b)}")
        self._pairs.append((np.asarray(a), np.asarray(b)))

    def block(self, ids: np.ndarray) -> None:
        self._blocked.append(np.asarray(ids))

    def resolve(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns (root of each id, blocked flag of each root)."""
        pairs = [p for p in self._pairs if len(p[0])]
        if pairs:
            u = np.concatenate([p[0] for p in pairs])
            v = np.concatenate([p[1] for p in pairs])
        else:
            u = v = np.zeros(0, np.int64)
        root = components(self.size, u, v)
        blocked = np.zeros(self.size, bool)
        for ids in self._blocked:
            blocked[root[ids]] = True
        return root, blocked


def components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Connected components of ``n`` nodes and edges (u, v): each node's smallest member."""
    labels = np.arange(n, dtype=np.int64)
    if len(u) == 0:
        return labels
    while True:
        low = np.minimum(labels[u], labels[v])
        new = labels.copy()
        np.minimum.at(new, u, low)
        np.minimum.at(new, v, low)
        while True:  # pointer jumping: follow labels to their own labels
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, labels):
            return labels
        labels = new


@dataclasses.dataclass(frozen=True, eq=False)
class Group:
    """Channels that are ranked and removed as one unit of choice.

    Attributes:
      name: the first producer's layer name (stable across runs).
      producers: layers whose filters belong to the group.
      classes: ids of the removable channels, in the producers' order.
    """

    name: str
    producers: tuple[str, ...]
    classes: np.ndarray

    @property
    def size(self) -> int:
        return len(self.classes)


@dataclasses.dataclass(frozen=True, eq=False)
class LayerChannels:
    """A node with its channel ids resolved to classes."""

    node: Node
    handler: handlers.Handler
    ins: tuple[np.ndarray, ...]
    outs: tuple[np.ndarray, ...]
    axes: tuple[WeightAxis, ...]


@dataclasses.dataclass(frozen=True, eq=False)
class Analysis:
    """The channel structure of a model: what can be pruned and with what."""

    graph: Graph
    layers: tuple[LayerChannels, ...]
    groups: tuple[Group, ...]
    n_ids: int
    producer_outs: dict  # producer name -> class ids of its output positions
    tensor_ids: dict  # tensor key -> class id of each channel position

    def keep_mask(self, kept: dict[str, np.ndarray]) -> np.ndarray:
        """A boolean over class ids: False for the channels ``kept`` leaves out.

        Args:
          kept: group name -> indices (into ``group.classes``) of kept channels;
            groups not named keep everything.
        """
        keep = np.ones(self.n_ids, bool)
        for group in self.groups:
            if group.name in kept:
                mask = np.zeros(group.size, bool)
                mask[np.asarray(kept[group.name], dtype=np.int64)] = True
                keep[group.classes[~mask]] = False
        return keep

    def group(self, name: str) -> Group:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)


def analyse(model, ignore: Sequence[str] = ()) -> Analysis:
    """Finds the channel groups of a Keras 3 or tf_keras model.

    Args:
      model: a built functional or Sequential model of either Keras.
      ignore: layer names or fnmatch patterns whose output channels stay
        intact (an ignored layer of an unsupported class is treated as
        opaque: its inputs are kept too).

    Returns:
      The model's :class:`Analysis`.

    Raises:
      UnsupportedModelError: subclassed model, shared layer...
      UnsupportedLayerError: a layer class without a handler.
    """
    ignored = _Ignore(ignore)
    graph = read_graph(model, allow_shared=ignored.names_in(model))
    tracer = Tracer()
    ids = {key: tracer.fresh_blocked(channels(graph.shapes[key])) for key in graph.inputs}
    shared = {n.path for n in graph.nodes if "#" in n.name}
    traced = []
    for node in graph.nodes:
        # A shared layer has one kernel for all its calls: keep it whole, inputs too.
        handler = handlers.opaque() if node.path in shared else _handler_for(node, ignored)
        ins = [ids[k] for k in node.inputs]
        outs = handler.trace(node, ins, tracer)
        if ignored.match(node):
            # An ignored layer keeps its own channels; as a consumer it may
            # still lose input slices (an opaque one blocks its inputs itself).
            for a in outs:
                tracer.block(a)
        ids.update(zip(node.outputs, outs))
        traced.append((node, handler, ins, outs))
    for key in graph.outputs:
        tracer.block(ids[key])
    root, blocked = tracer.resolve()
    layers = tuple(_resolve_layer(t, root) for t in traced)
    groups, producer_outs = _groups(tracer, root, blocked, ignored)
    tensor_ids = {key: root[value] for key, value in ids.items()}
    return Analysis(graph, layers, groups, tracer.size, producer_outs, tensor_ids)


def _handler_for(node, ignored):
    handler = handlers.find_handler(type(node.layer))
    if handler is None and ignored.match(node):
        return handlers.opaque()
    return handler or handlers.get_handler(node)


def _resolve_layer(traced, root) -> LayerChannels:
    node, handler, ins, outs = traced
    axes = tuple(a.with_ids(root[a.ids]) for a in handler.weight_axes(node, ins, outs))
    return LayerChannels(node, handler, tuple(root[i] for i in ins),
                         tuple(root[o] for o in outs), axes)


def _groups(tracer, root, blocked, ignored):
    """Groups = classes connected through shared producers, named by the first producer."""
    u, v = [], []
    producer_outs = {}
    for owner, start, stop in tracer.blocks:
        block = root[start:stop]
        producer_outs[owner] = block
        if ignored.match_name(owner):
            blocked[block] = True
        u.append(block[:-1])
        v.append(block[1:])
    edges_u = np.concatenate(u) if u else np.zeros(0, np.int64)
    edges_v = np.concatenate(v) if v else np.zeros(0, np.int64)
    group_of = components(tracer.size, edges_u, edges_v)
    members: dict[int, list] = {}
    for owner, start, stop in tracer.blocks:
        label = int(group_of[root[start]])
        entry = members.setdefault(label, [owner, [], []])
        entry[1].append(owner)
        entry[2].append(root[start:stop])
    groups = []
    for label in sorted(members):
        first, owners, blocks = members[label]
        classes = np.unique(np.concatenate(blocks))
        classes = classes[~blocked[classes]]
        if len(classes):
            groups.append(Group(first, tuple(dict.fromkeys(owners)), classes))
    return tuple(groups), producer_outs


class _Ignore:
    """Matches layer names against the user's ignore patterns."""

    def __init__(self, patterns: Sequence[str]):
        if isinstance(patterns, str):
            patterns = [patterns]
        self.patterns = tuple(patterns)

    def match_name(self, name: str) -> bool:
        base = name.split("#")[0]
        return any(fnmatch.fnmatchcase(base, p) or fnmatch.fnmatchcase(base.split("/")[-1], p)
                   for p in self.patterns)

    def match(self, node) -> bool:
        return self.match_name(node.name)

    def names_in(self, model) -> frozenset:
        if not self.patterns:
            return frozenset()
        return frozenset(path[-1] for path, _ in layer_paths(model)
                         if self.match_name("/".join(path)))
