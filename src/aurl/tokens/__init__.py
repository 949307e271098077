"""Score <-> token ids over the 774-token event vocabulary on a 32nd-note grid."""

from aurl.tokens.decode import decode
from aurl.tokens.encode import encode
from aurl.tokens.grammar import GrammarState, count_invalid, is_valid, model_tables
from aurl.tokens.quantize import quantize
from aurl.tokens.vocab import VOCAB_SIZE, VOCAB_VERSION, check_vocab_version, token_id, token_name

__all__ = [
    "VOCAB_SIZE",
    "VOCAB_VERSION",
    "check_vocab_version",
    "GrammarState",
    "count_invalid",
    "decode",
    "encode",
    "is_valid",
    "model_tables",
    "quantize",
    "token_id",
    "token_name",
]
