"""Common machinery of integral layers: partitions per channel axis, quadrature, caching."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from inn.continuous import ContinuousTensor, Partition
from inn.continuous.resample import ResamplePlan, plan_uniform, resample_uniform, sampling_dtype
from inn.errors import ShapeError

__all__ = [
    "IntegralLayer", "PartitionSpec", "at_nodes", "fill", "node_indices", "shared_partition",
]  # fmt: skip

PLAN_CACHE_SIZE = 64  # resampling plans kept per layer (least recently used dropped)

# role ("in", "out") -> the partitions of its segments; None or missing -> discrete axis
PartitionSpec = Mapping[str, Sequence[Partition] | Partition | None]


class IntegralLayer(nn.Module):
    """Base class of layers whose tensors are continuous along their channel axes.

    A layer has up to two channel *roles*, ``"out"`` and ``"in"``. A continuous role is served by
    one or more :class:`~inn.continuous.Partition` objects (segments: more than one where the
    input concatenates the channels of several producers), which may be shared with other layers.
    The ``"in"`` role is integrated: the sampled weight is multiplied by the quadrature weights of
    its partition, scaled by the segment's full size, so that a layer sampled at its full uniform
    partition has exactly its discrete weights (up to round-off) and one sampled at fewer points
    keeps the same total response.

    Without autograd the sampled tensors are cached until a parameter or a partition changes.
    """

    is_norm = False  # normalisation layers: weight and bias are affine parameters, not a kernel

    def __init__(self, rule: str) -> None:
        super().__init__()
        self.rule = rule
        self.partitions = nn.ModuleDict()
        # tensor name -> (dim -> role, integrated dim or None, dims to merge after sampling)
        self._layouts: dict[str, tuple[dict[int, str], int | None, tuple[int, int] | None]] = {}
        self._cache: tuple[tuple[Any, ...], dict[str, Tensor]] | None = None
        # resampling plans per partition sizes (random-width training revisits a few widths)
        # (and the gather indices of selected channels, :meth:`_gather_index`)
        self._plans: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    # -- partitions -------------------------------------------------------------------------
    def _set_partitions(
        self, spec: PartitionSpec | None, full_sizes: Mapping[str, int], rule: str
    ) -> None:
        """Attach partitions to the roles in ``full_sizes`` (role -> number of channels).

        ``spec[role]`` is a partition, a list of partitions (segments of the axis, in order) or
        None (the role stays discrete); without ``spec`` every role gets a new partition.
        """
        spec = (
            dict(spec)
            if spec is not None
            else {r: Partition(n, rule=rule) for r, n in full_sizes.items()}
        )
        unknown = set(spec) - set(full_sizes)
        if unknown:
            raise ShapeError(
                f"{type(self).__name__} has channel roles {sorted(full_sizes)}, got {sorted(unknown)}"
            )
        for role, given in spec.items():
            if given is None:
                continue
            parts = [given] if isinstance(given, Partition) else list(given)
            sizes = [p.full_size for p in parts]
            if sum(sizes) != full_sizes[role]:
                raise ShapeError(
                    f"{type(self).__name__}: role {role!r} has {full_sizes[role]} channels, but the "
                    f"given partitions have full sizes {sizes}"
                )
            self.partitions[role] = nn.ModuleList(parts)

    def is_continuous(self, role: str) -> bool:
        return role in self.partitions

    def segment_partitions(self, role: str) -> list[Partition]:
        return list(self.partitions[role]) if role in self.partitions else []

    def channel_axes(self) -> dict[str, dict[int, str]]:
        """Per continuous tensor (``weight``, ``bias``...): which of its axes run along which
        continuous channel role, ``{dim: role}``."""
        return {name: dict(roles) for name, (roles, _, _) in self._layouts.items()}

    def at_full_width(self) -> bool:
        """Whether every continuous axis has its full uniform partition: sampling gives the
        node values themselves."""
        parts = [p for segments in self.partitions.values() for p in segments]
        return all(p.size == p.full_size and p.is_uniform for p in parts)

    def weight_axes(self) -> dict[str, dict[int, str]]:
        """Per continuous weight (a parameter with more than one entry per channel, not a bias,
        a normalisation's scale or a statistic), its channel axes, ``{dim: role}``: those it
        produces (a convolution's output channels) and the one it sums over (its input
        channels)."""
        out = {}
        for name, (roles, _, merge) in self._layouts.items():
            values = getattr(self, f"{name}_function").values
            if not isinstance(values, nn.Parameter):
                continue
            channel_axes = set(range(merge[0], merge[1] + 1)) if merge is not None else set()
            for d, role in roles.items():
                axes = channel_axes if d in channel_axes else {d}
                if values.numel() > math.prod(values.shape[a] for a in axes):
                    out.setdefault(name, {})[d] = role
        return out

    def full_width_values(self, name: str) -> Tensor:
        """The node values of tensor ``name`` as the discrete tensor at full width holds them:
        the quadrature factors divided out at conversion multiplied back on the summed axis
        (same shape as the node values)."""
        function: ContinuousTensor = getattr(self, f"{name}_function")
        roles, integrated, _ = self._layouts[name]
        values = function.values
        if integrated is None:
            return values
        return _times(values, self._full_scale(roles[integrated], values), integrated)

    def size(self, role: str, full_size: int) -> int:
        """Current number of channels of ``role`` (``full_size`` when the role is discrete)."""
        parts = self.segment_partitions(role)
        return sum(p.size for p in parts) if parts else full_size

    def points(self, role: str, like: Tensor) -> list[Tensor | int]:
        """Per segment: its trained points, or the size of its uniform partition."""
        return [p.size if p.is_uniform else p.points(like) for p in self.segment_partitions(role)]

    def quadrature_scale(self, role: str, like: Tensor) -> Tensor | None:
        """Per-channel factor for an integrated role: quadrature weight x segment full size.

        In float32 for half-precision ``like`` (see :func:`sampling_dtype`), so that the factors
        divided out at conversion and multiplied back at sampling are the same numbers.
        """
        parts = self.segment_partitions(role)
        if not parts:
            return None
        like = _sampling_like(like)
        return torch.cat([p.weights(like) * p.full_size for p in parts])

    def _full_scale(self, role: str, like: Tensor) -> Tensor:
        """:meth:`quadrature_scale` of ``role`` at its full, uniform partition."""
        like = _sampling_like(like)
        return torch.cat(
            [p.full_weights(like) * p.full_size for p in self.segment_partitions(role)]
        )

    # -- continuous tensors -----------------------------------------------------------------
    def _register(
        self,
        name: str,
        tensor: Tensor | None,
        roles: dict[int, str],
        *,
        integrated: int | None = None,
        merge: tuple[int, int] | None = None,
        trainable: bool = True,
    ) -> None:
        """Store ``tensor`` (laid out with one axis per role) as a continuous tensor ``name``.

        Args:
            roles: which axis of ``tensor`` runs along which channel role.
            integrated: the axis summed over by the layer (multiplied by quadrature weights).
            merge: axes ``(start, end)`` flattened into one after sampling (e.g. groups).
        """
        if tensor is None:
            setattr(self, f"{name}_function", None)
            return
        roles = {d: r for d, r in roles.items() if self.is_continuous(r)}
        values = tensor.detach()
        if integrated is not None and integrated in roles:
            scale = self._full_scale(roles[integrated], values)
            values = _times(values, scale, integrated, inverse=True)
        segments = {d: [p.full_size for p in self.segment_partitions(r)] for d, r in roles.items()}
        closed = any(p.closed for r in roles.values() for p in self.segment_partitions(r))
        setattr(
            self,
            f"{name}_function",
            ContinuousTensor(values, segments, closed=closed, trainable=trainable),
        )
        self._layouts[name] = (roles, integrated if integrated in roles else None, merge)

    def _sample_tensor(self, name: str) -> Tensor | None:
        function: ContinuousTensor | None = getattr(self, f"{name}_function")
        if function is None:
            return None
        roles, integrated, merge = self._layouts[name]
        like = function.values
        out = function.sample({d: self.points(r, like) for d, r in roles.items()})
        if integrated is not None:
            out = _times(out, self.quadrature_scale(roles[integrated], like), integrated)
        return out.flatten(*merge) if merge is not None else out

    def assign(self, name: str, discrete: Tensor) -> None:
        """Set continuous tensor ``name`` so that sampling at the current partitions gives
        ``discrete`` (in the layer's canonical layout). Every continuous role must currently have
        as many points as channels."""
        function: ContinuousTensor = getattr(self, f"{name}_function")
        roles, integrated, merge = self._layouts[name]
        target = discrete.reshape(function.values.shape) if merge is not None else discrete
        if integrated is not None:
            scale = self.quadrature_scale(roles[integrated], function.values)
            target = _times(target, scale, integrated, inverse=True)
        function.assign(target, {d: self.points(r, function.values) for d, r in roles.items()})

    # -- sampling ---------------------------------------------------------------------------
    def _sample(self) -> dict[str, Tensor]:
        parts = [p for segments in self.partitions.values() for p in segments]
        if all(at_nodes(p) for p in parts) and not all(p.is_uniform for p in parts):
            return {name: self._gather_tensor(name) for name in self._layouts}
        if not all(p.is_uniform for p in parts):
            return {name: self._sample_tensor(name) for name in self._layouts}
        # Uniform partitions: constant sparse maps, one autograd node for the whole layer.
        functions = {name: getattr(self, f"{name}_function") for name in self._layouts}
        like = next((f.values for f in functions.values() if f is not None), None)
        if like is None:  # e.g. a BatchNorm without affine parameters or running statistics
            return dict.fromkeys(functions)
        key = (tuple((id(p), p.size) for p in parts), like.dtype, like.device)
        plans = self._memo(
            key, lambda: {n: self._plan(n) for n, f in functions.items() if f is not None}
        )
        sampled = resample_uniform(list(plans.values()), [functions[n].values for n in plans])
        by_name = dict(zip(plans, sampled, strict=True))
        return {name: by_name.get(name) for name in functions}

    def _gather_tensor(self, name: str) -> Tensor | None:
        """Tensor ``name`` where every partition is at lattice nodes (selected channels, or the
        full uniform lattice): its node values gathered along each continuous axis, times the
        quadrature factors of the integrated one. The same numbers as :meth:`_sample_tensor`
        (whose interpolant at a node is the node value), without comparing points with nodes
        at every pass."""
        function: ContinuousTensor | None = getattr(self, f"{name}_function")
        if function is None:
            return None
        roles, integrated, merge = self._layouts[name]
        out = function.values
        for dim, role in roles.items():
            index = self._gather_index(role, out.device)
            if index is not None:
                out = out.index_select(dim, index)
        if integrated is not None:
            out = _times(out, self._gather_scale(roles[integrated], function.values), integrated)
        return out.flatten(*merge) if merge is not None else out

    def _gather_scale(self, role: str, like: Tensor) -> Tensor:
        """:meth:`quadrature_scale` of ``role`` at lattice nodes (no trained points: constant
        for the selection), memoised with the resampling plans."""
        parts = self.segment_partitions(role)
        key = ("scale", role, tuple(p.sampling_key for p in parts), like.dtype, like.device)
        return self._memo(key, lambda: self.quadrature_scale(role, like).detach())

    def _memo(self, key: tuple[Any, ...], compute: Any) -> Any:
        """``self._plans[key]``, computed by ``compute()`` if missing (least recently used
        dropped beyond :data:`PLAN_CACHE_SIZE`)."""
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        with torch.inference_mode(False):  # memoised tensors must also serve autograd later
            value = self._plans[key] = compute()
        if len(self._plans) > PLAN_CACHE_SIZE:
            self._plans.popitem(last=False)
        return value

    def _gather_index(self, role: str, device: torch.device) -> Tensor | None:
        """The lattice nodes ``role``'s channels are (over its concatenated segments), or
        ``None`` where they are all of them in order; memoised with the resampling plans."""
        parts = self.segment_partitions(role)

        def index() -> Tensor | None:
            nodes = node_indices(parts)
            whole = nodes == list(range(sum(p.full_size for p in parts)))
            return None if whole else torch.tensor(nodes, device=device)

        return self._memo(("nodes", role, tuple(p.sampling_key for p in parts), device), index)

    def _plan(self, name: str) -> ResamplePlan:
        function: ContinuousTensor = getattr(self, f"{name}_function")
        roles, integrated, merge = self._layouts[name]
        like = function.values
        scale = None
        if integrated is not None:
            scale = (integrated, self.quadrature_scale(roles[integrated], like))
        return plan_uniform(
            like.shape,
            function.segments,
            {d: tuple(p.size for p in self.segment_partitions(r)) for d, r in roles.items()},
            closed=function.closed,
            scale=scale,
            merge=merge,
            dtype=sampling_dtype(like.dtype),
            device=like.device,
            # random widths rarely repeat a combination of sizes: building a Kronecker product
            # for each cost more than it saved (a fifth of a MobileNetV2 sandwich step, measured)
            kronecker=False,
        )

    def _cache_key(self) -> tuple[Any, ...]:
        """Changes whenever what :meth:`_sample` reads may have changed: the node values (id and
        in-place version) and the partitions. Runs at every forward pass in eval mode, so it
        reads exactly those instead of walking every submodule."""
        values = [getattr(self, f"{name}_function").values for name in self._layouts]
        key: list[Any] = [(id(v), v._version) for v in values]
        key += [p.cache_key() for parts in self.partitions.values() for p in parts]
        return tuple(key)

    def sampled(self) -> dict[str, Tensor]:
        """The discrete tensors at the current partitions (``weight``, ``bias``...).

        Where no gradient is recorded (``torch.no_grad``/``torch.inference_mode``) the result is
        cached until a parameter, a buffer or a partition changes; otherwise it is recomputed so
        that gradients reach node values and partition points.
        """
        if torch.is_grad_enabled():
            return self._sample()
        key = self._cache_key()
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._sample())
        return self._cache[1]

    def _apply(self, fn: Any, recurse: bool = True) -> IntegralLayer:
        self._cache = None  # .to(), .double(), ... invalidate cached tensors
        self._plans = OrderedDict()
        return super()._apply(fn, recurse)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"], state["_plans"] = None, OrderedDict()
        return state

    def to_discrete(self) -> nn.Module:
        """A plain PyTorch layer with the tensors sampled at the current partitions."""
        raise NotImplementedError


def shared_partition(spec: PartitionSpec | None, channels: int, rule: str, what: str) -> Any:
    """The partition(s) of a layer whose input and output channels are one axis."""
    if spec is None:
        return Partition(channels, rule=rule)
    out, inp = spec.get("out"), spec.get("in", spec.get("out"))
    same = out is inp or (
        isinstance(out, (list, tuple)) and isinstance(inp, (list, tuple)) and list(out) == list(inp)
    )
    if not same:
        raise ShapeError(
            f"{what}'s input and output channels are one axis: pass the same partition (or None) "
            "for 'out' and 'in'"
        )
    return out


def fill(layer: nn.Module, tensors: Mapping[str, Tensor]) -> nn.Module:
    """Copy sampled ``tensors`` into the same-named parameters or buffers of a plain ``layer``."""
    with torch.no_grad():
        for name, value in tensors.items():
            getattr(layer, name).copy_(value)
    return layer


def _times(tensor: Tensor, vector: Tensor, dim: int, *, inverse: bool = False) -> Tensor:
    """``tensor`` multiplied (divided) by ``vector`` along axis ``dim``, computed in the dtype of
    ``vector`` and returned in that of ``tensor``."""
    shape = [1] * tensor.dim()
    shape[dim] = -1
    vector = vector.reshape(shape)
    wide = tensor.to(vector.dtype)
    return (wide / vector if inverse else wide * vector).to(tensor.dtype)


def at_nodes(partition: Partition) -> bool:
    """Whether ``partition``'s points are lattice nodes: selected ones, or its full uniform
    lattice."""
    return partition.selected is not None or (
        partition.is_uniform and partition.size == partition.full_size
    )


def node_indices(segments: Sequence[Partition]) -> list[int]:
    """The lattice nodes the points of ``segments`` (partitions of one axis, concatenated)
    are, counted over the concatenated lattices; every segment :func:`at_nodes`."""
    nodes, offset = [], 0
    for p in segments:
        nodes.extend(offset + i for i in (p.selected or range(p.full_size)))
        offset += p.full_size
    return nodes


def _sampling_like(like: Tensor) -> Tensor:
    """An empty tensor in the sampling dtype of ``like`` and on its device."""
    return torch.empty(0, dtype=sampling_dtype(like.dtype), device=like.device)
