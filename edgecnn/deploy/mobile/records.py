"""What ``make_mobile`` returns and writes: the result records, report names and the providers it estimates for."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

REPORT_JSON, REPORT_TEXT = "report.json", "report.txt"
#: What to do about an operator a mobile provider lacks, where there is a way round it: (provider, op) → advice.
HINTS = {
    ("NNAPI", "ConvTranspose"): "U-Net: unet_bilinear upsamples with Resize instead",
    ("CoreML NeuralNetwork", "QuantizeLinear"): "CoreML runs float models: ship fp32 or fp16 for it",
    ("CoreML NeuralNetwork", "DequantizeLinear"): "CoreML runs float models: ship fp32 or fp16 for it",
    ("CoreML MLProgram", "QuantizeLinear"): "CoreML runs float models: ship fp32 or fp16 for it",
    ("CoreML MLProgram", "DequantizeLinear"): "CoreML runs float models: ship fp32 or fp16 for it",
}
PARITY_SAMPLES = 8
#: (label, onnxruntime's supported-operator list, the highest tensor rank it takes), as the usability checker has them.
EPS = (
    ("NNAPI", "nnapi_supported_ops.md", 999),
    ("CoreML NeuralNetwork", "coreml_supported_neuralnetwork_ops.md", 5),
    ("CoreML MLProgram", "coreml_supported_mlprogram_ops.md", 5),
)


@dataclass(frozen=True)
class Fallback:
    """Nodes of one operator type that an execution provider leaves to the CPU, and why."""

    op: str
    count: int
    reason: str


@dataclass(frozen=True)
class Partitioning:
    """How one mobile execution provider would split a graph (onnxruntime's usability-checker estimate)."""

    provider: str
    nodes: int
    supported_nodes: int
    partitions: int
    partition_sizes: tuple
    fallbacks: tuple  # of Fallback
    caveats: tuple  # operator conditions the checker does not verify
    suitability: str  # the checker's verdict: YES, MAYBE or NO

    @property
    def coverage(self) -> float:
        return self.supported_nodes / self.nodes if self.nodes else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["partition_sizes"] = list(self.partition_sizes)
        d["fallbacks"] = [asdict(f) for f in self.fallbacks]
        d["caveats"] = list(self.caveats)
        d["coverage"] = round(self.coverage, 4)
        return d


@dataclass(frozen=True)
class MobileArtifact:
    """One file written by ``make_mobile``, with its parity against the source model."""

    file: str
    kind: str  # "onnx", "ort", "ort-runtime-opt"
    size_bytes: int
    sha256: str
    parity: dict

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MobileResult:
    """What ``make_mobile`` produced."""

    model: str
    source: Path
    out_dir: Path
    input_shape: tuple
    artifacts: tuple  # of MobileArtifact
    configs: tuple  # required-operator config file names
    partitions: tuple  # of Partitioning, fixed-shape graph
    source_partitions: tuple  # of Partitioning, the source graph as it was
    rewrites: dict
    dynamic_values: int  # values whose shape is still not static in the fixed graph (should be 0)
    report: dict
    warnings: tuple = ()

    @property
    def passed(self) -> bool:
        return all(a.parity.get("passed", False) for a in self.artifacts)

    def path(self, kind: str) -> Path:
        for a in self.artifacts:
            if a.kind == kind:
                return self.out_dir / a.file
        raise KeyError(kind)

    def partition(self, provider: str) -> Partitioning:
        for p in self.partitions:
            if p.provider == provider:
                return p
        raise KeyError(provider)
