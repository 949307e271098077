"""What `aurl export` reports: the file written, its size against float32, and each verification check."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Check(BaseModel):
    """One comparison of the exported model against the PyTorch float32 model."""

    name: str = Field(description="What was compared, e.g. 'chorale token by token'.")
    max_abs_diff: float = Field(description="Largest absolute difference of the compared values.")
    tolerance: float | None = Field(description="Largest difference that passes; None: reported only.")
    passed: bool = Field(description="max_abs_diff <= tolerance (True when only reported).")


class ExportResult(BaseModel):
    """The outcome of one export."""

    checkpoint: str = Field(title="checkpoint", description="The weights file exported.")
    format: str = Field(title="format", description="onnx, int8, fp16 or bf16.")
    file_format: str = Field(title="file format", description="The file's own format key (e.g. onnx-int8).")
    out: str = Field(title="written", description="The file written.")
    mode: str = Field(title="mode", description="The model's mode (transformer, vae, vae_gan).")
    attention: str = Field(title="attention", description="The model's attention kind.")
    size_bytes: int = Field(title="size (bytes)", description="Size of the written file.")
    source_bytes: int = Field(title="source size (bytes)", description="Size of the (float32) source file.")
    size_ratio: float = Field(title="size / source", description="size_bytes / source_bytes.")
    opset: int | None = Field(default=None, title="ONNX opset", description="ONNX files: the opset.")
    seconds: float = Field(title="seconds", description="Wall time of the export (and verification).")
    verified: bool | None = Field(
        default=None, title="verified", description="None without --verify, else whether every check passed."
    )
    loss_float32: float | None = Field(
        default=None, title="loss float32", description="Mean cross-entropy (nats/token) on a test chorale."
    )
    loss_export: float | None = Field(
        default=None, title="loss export", description="The same for the exported model."
    )
    loss_increase_pct: float | None = Field(
        default=None, title="loss increase %", description="100 * (loss_export / loss_float32 - 1)."
    )
    checks: list[Check] = Field(default_factory=list, title="checks", description="Verification checks.")
