"""Text sources, tokenizers, cached token arrays and batch sampling for language-model training."""

from .dataset import check_length, content_key, tokenize_cached, train_val_split, windows_at
from .sources import CORPORA, EOT, cache_dir, fetch_corpus, iter_documents, iter_segments, load_documents, split_stories
from .tokenizer import (
                      KINDS,
                      BPETokenizer,
                      CharTokenizer,
                      TiktokenTokenizer,
                      build_tokenizer,
                      encode_documents,
                      encode_segments,
                      tokenizer_from_dict,
)

__all__ = [
    "BPETokenizer", "CORPORA", "CharTokenizer", "EOT", "KINDS", "TiktokenTokenizer", "build_tokenizer",
    "cache_dir", "check_length", "content_key", "encode_documents", "encode_segments", "fetch_corpus",
    "iter_documents", "iter_segments", "load_documents",
    "split_stories", "tokenize_cached", "tokenizer_from_dict", "train_val_split", "windows_at",
]
