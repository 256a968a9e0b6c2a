"""Data loading: text, JSONL, chat JSONL, CSV, Parquet, saved and hub datasets, limits, padding, bad input."""

from __future__ import annotations

import json

import pytest
from tiny import make_tokenizer

from modeldiff_cli.core.data.datasets import (
    dataset_name,
    iter_batches,
    load_dataset,
    read_records,
    source_fingerprint,
)
from modeldiff_cli.core.errors import UserError


@pytest.fixture()
def tok():
    return make_tokenizer()


@pytest.fixture(autouse=True)
def digest_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELDIFF_CACHE_DIR", str(tmp_path / "digest-cache"))


def write_parquet(path, columns: dict, row_group_size: int | None = None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_plain_text_one_sample_per_line(tmp_path, tok):
    ds = load_dataset(write(tmp_path / "a.txt", ["the cat sat", "", "hello world"]), tok)
    assert ds.name == "a" and len(ds.samples) == 2
    assert ds.samples[0].ids == tok("the cat sat")["input_ids"]
    assert all(all(s.mask) for s in ds.samples)


def test_jsonl_text_field_limits_and_fingerprint(tmp_path, tok):
    path = write(tmp_path / "d.jsonl", [json.dumps({"body": f"the cat sat on the mat {i}"}) for i in range(5)])
    ds = load_dataset(path, tok, text_field="body", max_samples=3, max_tokens=4)
    assert len(ds.samples) == 3 and all(len(s.ids) == 4 for s in ds.samples)
    again = load_dataset(path, tok, text_field="body", max_samples=3, max_tokens=4)
    other = load_dataset(path, tok, text_field="body", max_samples=2, max_tokens=4)
    assert ds.fingerprint == again.fingerprint != other.fingerprint


def test_chat_mask_selects_assistant_tokens(tmp_path, tok):
    msgs = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "the cat sat"}]
    ds = load_dataset(write(tmp_path / "c.jsonl", [json.dumps({"messages": msgs})]), tok)
    s = ds.samples[0]
    assert ds.chat
    selected = tok.decode([i for i, m in zip(s.ids, s.mask, strict=True) if m])
    assert selected.strip() == "the cat sat"
    before = load_dataset(tmp_path / "c.jsonl", tok, positions_before=2).samples[0]
    assert sum(before.mask) == sum(s.mask) + 2


def test_batches_are_right_padded_with_masks(tmp_path, tok):
    ds = load_dataset(write(tmp_path / "a.txt", ["the cat sat on the mat", "hi"]), tok)
    (batch,) = list(iter_batches(ds.samples, batch_size=8, pad_id=tok.pad_token_id))
    n0, n1 = len(ds.samples[0].ids), len(ds.samples[1].ids)
    assert batch.input_ids.shape == (2, max(n0, n1))
    assert batch.attention_mask.sum(1).tolist() == [n0, n1]
    assert (batch.input_ids[1, n1:] == tok.pad_token_id).all()
    assert batch.position_mask.sum().item() == n0 + n1


@pytest.mark.parametrize(
    "content,kwargs,message",
    [
        (None, {}, "no such file"),
        ("", {}, "holds no samples"),
        ('{"text": "ok"}\n{oops\n', {}, r"d.jsonl:2: malformed JSON"),
        ('{"body": "x"}\n', {}, r"d.jsonl:1: no field 'text' \(fields: body\); set --text-field"),
        ('{"text": 3}\n', {}, "not a string"),
        ('[1, 2]\n', {}, "JSON object per line"),
        ('{"messages": [{"role": "user"}]}\n', {}, "messages"),
        ('{"text": "ok"}\n', {"max_samples": 0}, "--max-samples"),
        ('{"text": "ok"}\n', {"max_tokens": 1}, "--max-tokens"),
    ],
)
def test_bad_input(tmp_path, tok, content, kwargs, message):
    path = tmp_path / "d.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_dataset(path, tok, **kwargs)


def test_batch_size_must_be_positive(tok):
    with pytest.raises(UserError, match="--batch-size"):
        list(iter_batches([], 0, 0))


def test_parquet_text_column_other_columns_kept_and_fingerprint(tmp_path, tok):
    path = write_parquet(tmp_path / "p.parquet", {"text": ["the cat sat", "hello world", "hi"], "prompt": ["a", "b", "c"]})
    ds = load_dataset(path, tok, max_samples=2)
    assert ds.name == "p" and len(ds.samples) == 2
    assert ds.samples[1].ids == tok("hello world")["input_ids"]
    rec = ds.samples[1].record
    assert rec.line == 2 and rec.fields == {"text": "hello world", "prompt": "b"}
    write_parquet(path, {"text": ["the cat sat", "hello there", "hi"], "prompt": ["a", "b", "c"]})
    assert load_dataset(path, tok, max_samples=2).fingerprint != ds.fingerprint


def test_parquet_bad_row_names_the_row(tmp_path):
    path = write_parquet(tmp_path / "p.parquet", {"text": ["ok", "fine", None]})
    with pytest.raises(UserError, match=r"p.parquet:row 3: field 'text' is not a string"):
        read_records(path)


def test_csv_quoted_fields_and_text_field(tmp_path, tok):
    path = tmp_path / "c.csv"
    path.write_text('id,body\n1,"the cat, the mat"\n2,"two\nlines"\n')
    recs = read_records(path, text_field="body")
    assert [r.text for r in recs] == ["the cat, the mat", "two\nlines"]
    assert recs[1].line == 2 and recs[1].fields == {"id": "2", "body": "two\nlines"}
    assert load_dataset(path, tok, text_field="body").name == "c"


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_missing_text_column_lists_the_columns(tmp_path, kind):
    path = tmp_path / f"t.{kind}"
    if kind == "csv":
        path.write_text("prompt,completion\na,b\n")
    else:
        write_parquet(path, {"prompt": ["a"], "completion": ["b"]})
    with pytest.raises(UserError, match=r"^--data .*t\.\w+: no column 'text' \(columns: prompt, completion\); set --text-field$"):
        read_records(path)
    assert read_records(path, text_field="completion")[0].fields == {"prompt": "a", "completion": "b"}


def test_saved_dataset_dir_and_dataset_dict(tmp_path, tok):
    datasets = pytest.importorskip("datasets")
    d = datasets.Dataset.from_dict({"text": ["the cat sat", "hello world", "hi"], "label": [0, 1, 0]})
    d.save_to_disk(str(tmp_path / "saved"))
    ds = load_dataset(tmp_path / "saved", tok, max_samples=2)
    assert ds.name == "saved" and [s.record.text for s in ds.samples] == ["the cat sat", "hello world"]
    assert ds.samples[0].record.fields == {"text": "the cat sat", "label": 0}
    datasets.DatasetDict({"train": d, "test": d.select([2])}).save_to_disk(str(tmp_path / "dd"))
    assert len(read_records(tmp_path / "dd")) == 3
    assert [r.text for r in read_records(f"{tmp_path / 'dd'}:test")] == ["hi"]
    assert dataset_name(f"{tmp_path / 'dd'}:test") == "dd-test"
    datasets.DatasetDict({"a": d, "b": d}).save_to_disk(str(tmp_path / "nosplit"))
    with pytest.raises(UserError, match=r"no split 'train' \(splits: a, b\)"):
        read_records(tmp_path / "nosplit")
    fp = source_fingerprint(tmp_path / "saved", "text", 2, None)
    datasets.Dataset.from_dict({"text": ["other"]}).save_to_disk(str(tmp_path / "saved2"))
    assert source_fingerprint(tmp_path / "saved2", "text", 2, None) != fp


def test_hub_dataset_offline_not_cached_is_one_clear_line(monkeypatch, tok):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = "hf:nonexistent-org/nonexistent-ds"
    with pytest.raises(UserError) as err:
        load_dataset(spec, tok)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"--data {spec}: dataset could not be loaded (offline or not in the Hugging Face cache)")


def test_hub_dataset_from_a_local_repo_offline(tmp_path, monkeypatch, tok):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    repo = tmp_path / "repo"
    repo.mkdir()
    write_parquet(repo / "train.parquet", {"text": ["the cat sat", "hello world"], "k": [1, 2]})
    ds = load_dataset(f"hf:{repo}", tok, max_samples=1)
    assert isinstance(ds.path, str) and ds.path == f"hf:{repo}"
    assert [s.record.text for s in ds.samples] == ["the cat sat"] and ds.samples[0].record.fields["k"] == 1


def test_dataset_names_for_every_form(tmp_path):
    assert dataset_name("hf:org/name:cfg:split") == "org--name-cfg-split"
    assert dataset_name("hf:imdb") == "imdb"
    for f in ("a.jsonl", "a.json", "a.txt", "a.csv", "a.parquet"):
        assert dataset_name(tmp_path / f) == "a"
    assert dataset_name(tmp_path / "my data.tsv") == "my_data"


def test_max_samples_on_a_large_parquet_reads_about_n_rows(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    n_rows = 1_000_000
    path = write_parquet(tmp_path / "big.parquet", {"text": [f"sample {i}" for i in range(n_rows)]}, row_group_size=100_000)
    read: list[int] = []
    real = pq.ParquetFile.iter_batches

    def counting(self, *args, **kwargs):
        for batch in real(self, *args, **kwargs):
            read.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counting)
    recs = read_records(path, max_samples=100)
    assert [r.text for r in recs[:2]] == ["sample 0", "sample 1"] and len(recs) == 100
    assert sum(read) <= 200  # streamed: batches of at most 100 rows read, not the million (no wall-time assert)
