"""MusicTransformerVAEGAN: one model in three modes (transformer, vae, vae_gan).

- transformer: token + beat embedding -> causal decoder -> logits (weights tied to the embedding).
- vae: a bidirectional encoder gives a hierarchical latent (models/vae.py); the decoder reads it
  through skip connections into every layer; inputs are word-dropped to MASK while training.
- vae_gan: vae plus a multi-scale discriminator (models/discriminator.py) over Gumbel-softmax
  samples of the decoder's distributions.

`forward(batch)` reports every loss term (models/losses.py, LOSS_TERMS) and their total in "loss";
the discriminator trains on `discriminator_loss(batch, out)` with its own optimizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aurl.config import ModelConfig
from aurl.errors import ConfigError
from aurl.models import losses as L
from aurl.models.attention import LayerCache
from aurl.models.discriminator import MultiScaleDiscriminator, discriminator_term, generator_terms, judge_pair
from aurl.models.geometry import Geometry
from aurl.models.pitch_rows import share_pitch_rows
from aurl.models.positions import BeatEmbedding, BeatFeatures, BeatState, beat_features
from aurl.models.presets import parameter_table
from aurl.models.table import TokenTable
from aurl.models.transformer import Stack
from aurl.models.vae import Latent, LatentCondition, LatentEncoder, kl_levels, reparameterize


@dataclass(frozen=True)
class DecodeCache:
    """What `step` carries between calls: per-layer keys/values, the beat state, position and latent."""

    layers: list[LayerCache]
    beat: BeatState
    pos: int
    z: Latent | None


class MusicTransformerVAEGAN(nn.Module):
    """The aurl model.

    Args:
        config: sizes, mode, attention kind and loss settings.
        table: what the model knows of tokens; None builds a neutral one (no beat information).

    Raises:
        ConfigError: the table's vocabulary size differs from `config.vocab_size`.
    """

    def __init__(self, config: ModelConfig, table: TokenTable | None = None) -> None:
        super().__init__()
        table = table if table is not None else TokenTable.plain(config.vocab_size)
        if table.vocab_size != config.vocab_size:
            raise ConfigError(
                f"token table has {table.vocab_size} tokens but model.vocab_size = {config.vocab_size}; "
                "build the model with the vocabulary's size"
            )
        self.config, self.table, c = config, table, config
        for name, tensor in table.tensors().items():
            self.register_buffer(f"table_{name}", tensor)
        self.latent = c.mode != "transformer"
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.beat = BeatEmbedding(c.d_model, table.steps_per_beat, c.bar_period)
        geometry = Geometry(
            c.attention, True, c.sliding_window, c.sliding_overlap, c.local_window, c.global_tokens
        )
        self.decoder = Stack(
            c.decoder_layers, c.d_model, c.checkpointing, n_heads=c.n_heads, geometry=geometry,
            dropout=c.dropout, attention_dropout=c.attention_dropout, rope_base=c.rope_base,
            ffn_mult=c.ffn_mult, cond_dim=c.latent_cond if self.latent else 0,
        )  # fmt: skip
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.head.weight = self.embed.weight
        self.drop = nn.Dropout(c.dropout)
        self.encoder = LatentEncoder(c, table.steps_per_beat) if self.latent else None
        self.condition = LatentCondition(c) if self.latent else None
        gan = c.mode == "vae_gan"
        self.discriminator = MultiScaleDiscriminator(c, table.steps_per_beat) if gan else None
        self.balancer = L.LossBalancer(
            ("recon", "constraint", *(("feature_matching",) if gan else ())), c.balance
        )
        self._init_weights()
        if c.shared_pitch_rows:
            if table.note_on_start < 0:
                raise ConfigError(
                    "model.shared_pitch_rows needs a token table that names the NoteOn ids (note_on_start); "
                    "build the model with aurl's token table"
                )
            share_pitch_rows(self.embed, self.head, table.note_on_start)

    @classmethod
    def from_preset(
        cls, name: str, mode: str | None = None, table: TokenTable | None = None, **overrides: object
    ) -> MusicTransformerVAEGAN:
        """A model of a named size: `from_preset("small", mode="vae_gan", table=table, dropout=0.0)`."""
        if mode is not None:
            overrides["mode"] = mode
        if table is not None:
            overrides.setdefault("vocab_size", table.vocab_size)
        return cls(ModelConfig.preset(name, **overrides), table)

    def _init_weights(self) -> None:
        # GPT-2 initialisation; residual output projections shrink with depth so the stream stays O(1).
        residual_std = 0.02 / math.sqrt(2 * self.config.decoder_layers)
        for name, module in self.named_modules():
            if name.startswith("discriminator"):
                continue
            if isinstance(module, nn.Linear):
                std = residual_std if name.endswith(("attn.out", "ffn.fc2")) else 0.02
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding) and module.num_embeddings == self.config.vocab_size:
                nn.init.normal_(module.weight, std=0.02)

    # --- pieces -------------------------------------------------------------------------------------

    def _table(self, name: str) -> Tensor:
        """A token-table buffer: time_advance, bar_start, bar_steps, forbidden or follow."""
        buffer = getattr(self, f"table_{name}")
        assert isinstance(buffer, Tensor)
        return buffer

    def _tables(self) -> dict[str, Tensor]:
        return {name: self._table(name) for name in ("time_advance", "bar_start", "bar_steps")}

    def _features(self, ids: Tensor, state: BeatState | None = None) -> BeatFeatures:
        state = state or BeatState.start(ids.shape[0], self.table.default_bar_steps, ids.device)
        return beat_features(ids, self._tables(), state)

    def _empty_latent(self, batch: int, device: torch.device) -> Latent:
        """The prior mean with no bars or windows: every token reads z = 0 at every level."""
        return Latent.prior(self.config, batch, device=device).map(torch.zeros_like)

    def _decode(self, inputs: Tensor, feats: BeatFeatures, z: Latent | None) -> Tensor:
        x = self.drop(self.embed(inputs) + self.beat(feats))
        cond = None
        if self.condition is not None:
            z = z if z is not None else self._empty_latent(inputs.shape[0], inputs.device)
            cond = self.condition(z, feats.bar, torch.arange(inputs.shape[1], device=inputs.device))
        return self.head(self.decoder(x, None, cond))

    def _word_dropout(self, ids: Tensor, valid: Tensor) -> Tensor:
        drop = (torch.rand(ids.shape, device=ids.device) < self.config.word_dropout) & valid
        drop[:, 0] = False  # keep BOS: the decoder needs one honest token to start from
        return ids.masked_fill(drop, self.table.mask_id)

    def _require_latent(self, what: str) -> None:
        if self.encoder is None:
            raise ConfigError(f"{what} needs model.mode vae or vae_gan; this model's mode is transformer")

    # --- public API ----------------------------------------------------------------------------------

    def encode(self, x: Tensor, mask: Tensor | None = None) -> tuple[Latent, Latent, Latent]:
        """Posterior of ids x (B, T) (mask (B, T) bool, default all True): (mu, logvar, z), z sampled."""
        self._require_latent("encode")
        assert self.encoder is not None
        mask = mask if mask is not None else torch.ones_like(x, dtype=torch.bool)
        mu, logvar = self.encoder(x, mask, self._features(x))
        return mu, logvar, reparameterize(mu, logvar)

    def decode(self, z: Latent | None, x: Tensor) -> Tensor:
        """Teacher-forced logits (B, T, V) for ids x (B, T) given latent z (ignored in transformer mode)."""
        return self._decode(x, self._features(x), z if self.latent else None)

    def step(
        self, ids: Tensor, cache: DecodeCache | None = None, z: Latent | None = None
    ) -> tuple[Tensor, DecodeCache]:
        """Incremental decoding: logits (B, T_new, V) for ids (B, T_new) following the cached tokens.

        One call with a whole sequence and many calls with parts of it give the same logits. Call
        `eval()` first. In vae modes, z (given once, kept in the cache) conditions the decoder; None
        decodes from the prior mean.
        """
        b, t = ids.shape
        state = cache.beat if cache is not None else None
        pos0 = cache.pos if cache is not None else 0
        z = z if z is not None else (cache.z if cache is not None else None)
        if self.latent and z is None:
            z = self._empty_latent(b, ids.device)
        feats = self._features(ids, state)
        x = self.drop(self.embed(ids) + self.beat(feats))
        cond = None
        if self.condition is not None and z is not None:
            cond = self.condition(z, feats.bar, torch.arange(pos0, pos0 + t, device=ids.device))
        h, layers = self.decoder.step(x, pos0, cache.layers if cache is not None else None, cond)
        return self.head(h), DecodeCache(layers, feats.last(), pos0 + t, z)

    def discriminate(self, x: Tensor, mask: Tensor | None = None, ids: Tensor | None = None) -> dict:
        """Discriminator scores and features for ids (B, T) or token distributions (B, T, V).

        Args:
            x: token ids, or distributions over tokens (e.g. Gumbel-softmax samples).
            mask: (B, T) bool positions to judge; default all.
            ids: ids that give the beat positions of distributions; default their argmax.

        Returns:
            {"scores": {scale: (B, N)}, "masks": {scale: (B, N)}, "features": {scale: [(B, N, C), mask]}}.
        """
        if self.discriminator is None:
            raise ConfigError("discriminate needs model.mode vae_gan; this model has no discriminator")
        dist = F.one_hot(x, self.config.vocab_size).float() if x.dim() == 2 else x
        ids = ids if ids is not None else (x if x.dim() == 2 else x.argmax(-1))
        mask = mask if mask is not None else torch.ones(ids.shape, dtype=torch.bool, device=ids.device)
        return self.discriminator(dist, self._features(ids), mask, self._table("time_advance")).as_dict()

    def forward(self, batch: dict[str, Tensor], step: int | None = None) -> dict[str, Tensor]:
        """Logits and every loss term for batch {"ids": (B, T) long, "mask": (B, T) bool}.

        Args:
            batch: token ids with BOS first and right padding (mask False).
            step: training step for the beta and adversarial schedules; None uses the final weights.

        Returns:
            "logits" (B, T, V) (position t predicts token t + 1), the scalars in `losses.LOSS_TERMS`
            and, in vae_gan mode, "soft_tokens" (B, T - 1, V) for `discriminator_loss`.
        """
        ids, valid = batch["ids"], batch["mask"].bool()
        feats = self._features(ids)
        mu = logvar = z = None
        if self.encoder is not None:
            mu, logvar = self.encoder(ids, valid, feats)
            z = reparameterize(mu, logvar) if self.training else mu
        inputs = self._word_dropout(ids, valid) if self.latent and self.training else ids
        logits = self._decode(inputs, feats, z)
        out = {"logits": logits, **self._terms(logits, ids, valid, feats, mu, logvar, step)}
        return out

    def _terms(
        self, logits: Tensor, ids: Tensor, valid: Tensor, feats: BeatFeatures,
        mu: Latent | None, logvar: Latent | None, step: int | None,
    ) -> dict[str, Tensor]:  # fmt: skip
        c = self.config
        pred, targets, tvalid = logits[:, :-1], ids[:, 1:], valid[:, 1:]
        zero = logits.new_zeros(())
        out = {name: zero for name in L.LOSS_TERMS}
        out["recon"] = L.reconstruction(pred, targets, tvalid, c.label_smoothing)
        out.update(self._constraints(pred, ids, tvalid, feats))
        constraint = out["constraint_forbidden"] + out["constraint_grammar"] + out["constraint_bar"]
        balanced = {"recon": (out["recon"], 1.0), "constraint": (constraint, c.constraint_weight)}
        scheduled: list[tuple[Tensor, float]] = []
        if mu is not None and logvar is not None:
            beta = L.beta_at(c, step)
            n_tokens = tvalid.sum().clamp(min=1)
            for level, (kl, rows) in kl_levels(mu, logvar).items():
                measured, penalised = L.kl_free_bits(kl, rows, c.free_bits, n_tokens)
                out[f"kl_{level}"] = measured
                scheduled.append((penalised, beta))
            out["kl"] = out["kl_global"] + out["kl_bar"] + out["kl_fine"]
            out["beta"] = zero + beta
        if self.discriminator is not None:
            soft = F.gumbel_softmax(pred.float(), tau=c.gumbel_tau, hard=False)
            real, fake = judge_pair(
                self.discriminator, targets, soft, tvalid, feats, self._table("time_advance")
            )
            out["adv"], out["feature_matching"] = generator_terms(real, fake, c.adversarial_loss)
            out["adv_weight"] = zero + L.adv_weight_at(c, step)
            out["soft_tokens"] = soft
            balanced["feature_matching"] = (out["feature_matching"], c.feature_matching_weight)
            scheduled.append((out["adv"], L.adv_weight_at(c, step)))
        out["loss"] = self.balancer(balanced, scheduled)
        return out

    def _constraints(
        self, pred: Tensor, ids: Tensor, tvalid: Tensor, feats: BeatFeatures
    ) -> dict[str, Tensor]:
        probs = pred.float().softmax(-1)
        out = {
            "constraint_forbidden": L.forbidden_mass(probs, self._table("forbidden"), tvalid),
            "constraint_bar": L.bar_overflow(
                probs, feats.pos_in_bar[:, :-1], feats.bar_len[:, :-1], self._table("time_advance"), tvalid
            ),
        }
        if self.table.follow is not None:
            out["constraint_grammar"] = L.grammar_mass(probs, ids[:, :-1], self._table("follow"), tvalid)
        return out

    def discriminator_loss(self, batch: dict[str, Tensor], out: dict[str, Tensor]) -> Tensor:
        """The discriminator's loss on the batch and the generated `out["soft_tokens"]` (detached).

        Raises:
            ConfigError: the model is not in vae_gan mode.
        """
        if self.discriminator is None or "soft_tokens" not in out:
            raise ConfigError(
                "discriminator_loss needs model.mode vae_gan and a forward output of that model"
            )
        ids, valid = batch["ids"], batch["mask"].bool()
        soft = out["soft_tokens"].detach()
        real, fake = judge_pair(
            self.discriminator,
            ids[:, 1:],
            soft,
            valid[:, 1:],
            self._features(ids),
            self._table("time_advance"),
        )
        return discriminator_term(real, fake, self.config.adversarial_loss)

    def generator_parameters(self) -> list[nn.Parameter]:
        """Every parameter outside the discriminator (the generator's optimizer steps these)."""
        skip = {id(p) for p in self.discriminator_parameters()}
        return [p for p in self.parameters() if id(p) not in skip]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """The discriminator's parameters (empty unless vae_gan). Zero their grads before its step."""
        return list(self.discriminator.parameters()) if self.discriminator is not None else []

    def parameter_table(self) -> dict[str, int]:
        """Parameters per part: embedding, encoder, latent, decoder, discriminator, heads, total."""
        return parameter_table(self)
