"""Every external data file with its canonical public URL (raw GitHub at a pinned commit)
and its SHA-256, per `icm data fetch` dataset."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    path: str  # relative to the data directory
    url: str  # canonical public source (raw GitHub at a pinned commit)
    sha256: str


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    license: str
    files: tuple[RemoteFile, ...]


def _gh(repo: str, commit: str, base: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{base}"


_TQA = _gh("sylinrl/TruthfulQA", "d71c110897f5d31c5d7f309e7bc316c152f6f031", "")
_GSM = _gh(
    "openai/grade-school-math",
    "3101c7d5072418e28b9008a6636bde82a006892c",
    "grade_school_math/data/",
)
_ETH = _gh("oughtinc/ice", "5449543c71c039753603ab57344147a1156bfb46", "ethics/")
_DD = _gh("kellycyy/daily_dilemmas", "3b579ab5d9ec44e1c68597f84f6fde8eee34783e", "")
_DD2 = _gh(
    "Zachary-Wojtowicz/preference-learning-dev",
    "5fa7e028c8311c14a6b23a9c4094ccb1698b693b",
    "datasets/",
)
_MFV = _gh(
    "peterkirgis/llm-moral-foundations", "fc39db0e3290ae6f7e23d05f79947e53b6afcb6f", "data/survey/"
)
_MFV2 = _gh("wassname/tinymfv", "01e9026641c58fb57fb565916b5ecbafbdfce4d5", "src/moralmaps/data/")
_MACH = _gh("aypan17/machiavelli", "5796a593aa57b0d6c1c9f43ccf83657e87a5b8af", "experiments/")
_PS1 = _gh(
    "yd-pei/Unsupervised_Persona_Elicitation", "ca43bf6e460fd60b9c6100471edfd2fb2747f140", "data/"
)
_PS2 = _gh(
    "ZeynabSamei/Unsupervised-Elicitation-modified",
    "20d2e7082fa86df001281cdf9d11a3c22123fc5f",
    "data/",
)
_HH = _gh("DaehanKim/EasyRLHF", "45eccb72ddb8c18aa52dc2a184516380e06582fe", "data/")


def _files(*rows: tuple[str, str, str]) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(path, url, sha) for path, url, sha in rows)


# The same files as ../shared/data (see its SOURCES.md); checksums as in its SHA256SUMS.
DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "truthfulqa",
            "TruthfulQA questions with correct and incorrect answers (sylinrl/TruthfulQA)",
            "Apache-2.0",
            _files(
                (
                    "truthfulqa/TruthfulQA.csv",
                    _TQA + "TruthfulQA.csv",
                    "b8d8ef1e12f98b4f2a9f47abc9765da0640b182b6c5d9b92f0c1a1f2f1e02e5c",
                ),
                (
                    "truthfulqa/TruthfulQA_demo.csv",
                    _TQA + "TruthfulQA_demo.csv",
                    "c429572050362797778f56c3ce9694bb670180de1c7758014e9be95c7cd4fe52",
                ),
                (
                    "truthfulqa/data/mc_task.json",
                    _TQA + "data/mc_task.json",
                    "c90d853454fd48c676accb33e16923ac438dbb6fb37ecc7c6a70e33c9e556e87",
                ),
                (
                    "truthfulqa/data/eval_examples.csv",
                    _TQA + "data/eval_examples.csv",
                    "40ab4547b0a8ceaf1285b00f37bb908c9656e17e6e4dad3a8ed6e7256f4a1e1a",
                ),
                (
                    "truthfulqa/data/finetune_info.jsonl",
                    _TQA + "data/finetune_info.jsonl",
                    "b8e00e379f3aefcdb01b93886e67e0991ca90b5fdd389c0be4be2f5f00c07ec3",
                ),
                (
                    "truthfulqa/data/finetune_truth.jsonl",
                    _TQA + "data/finetune_truth.jsonl",
                    "8e81d9f0dc592e26fb0d37106126e489d39ac75099828b1f2c8142f3ede60c6b",
                ),
                (
                    "truthfulqa/data/v1/TruthfulQA.csv",
                    _TQA + "data/v1/TruthfulQA.csv",
                    "f9bd9e859cc102cb1f647f1064da7e009be752c416845cf9fa56e6eaae403a7d",
                ),
                (
                    "truthfulqa/data/v1/mc_task.json",
                    _TQA + "data/v1/mc_task.json",
                    "b3799639bc76c939836d587de7d30b48d91012cb34be04806d33106ce06c162a",
                ),
            ),
        ),
        Dataset(
            "gsm8k",
            "GSM8K grade-school math problems with worked solutions (openai/grade-school-math)",
            "MIT",
            _files(
                (
                    "gsm8k/train.jsonl",
                    _GSM + "train.jsonl",
                    "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465",
                ),
                (
                    "gsm8k/test.jsonl",
                    _GSM + "test.jsonl",
                    "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
                ),
                (
                    "gsm8k/test_socratic.jsonl",
                    _GSM + "test_socratic.jsonl",
                    "c96673362fa7a699f4836a9b6474a067448f95fe58064727501ee63ba4c3fdb6",
                ),
                (
                    "gsm8k/example_model_solutions.jsonl",
                    _GSM + "example_model_solutions.jsonl",
                    "4bc62db838f8418365d51c627bd66294cbdca9fb7f01519cb13f0dce8c51580b",
                ),
            ),
        ),
        Dataset(
            "paper_splits",
            "the ICM paper's prepared splits, from two forks of Jiaxin-Wen/Unsupervised-"
            "Elicitation (train_gsm8k/train_alpaca are not public)",
            "none stated; the underlying data: TruthfulQA Apache-2.0, GSM8K MIT, "
            "AlpacaFarm CC BY-NC 4.0",
            _files(
                (
                    "paper_splits/train_truthfulqa.json",
                    _PS1 + "train_truthfulqa.json",
                    "8149fae5c7f76086c922ce00d80d4aa0ae1dc6b36ac30a164c18ca1683969732",
                ),
                (
                    "paper_splits/test_truthfulqa.json",
                    _PS1 + "test_truthfulqa.json",
                    "5b5b17ff3774e5b0adcb295eb724c90e6c3fe90e01c7d8df72dc58fd4f05ed2b",
                ),
                (
                    "paper_splits/test_gsm8k.json",
                    _PS1 + "test_gsm8k.json",
                    "45a108c626a476bcf5d7ac5ba23394947ac18a435afcca411123ce1fa0a8233b",
                ),
                (
                    "paper_splits/test_alpaca.json",
                    _PS1 + "test_alpaca.json",
                    "5caf03489800b51590be6ab8821c0020a661b9f43b335c71aa8b577218f527d9",
                ),
                (
                    "paper_splits/train_truthfulqa_preference.json",
                    _PS2 + "train_truthfulqa_preference.json",
                    "43d31bbe3164cd664aa6f9de66dd9e73cdaa85a6e155995d9a48f0f320f47adc",
                ),
                (
                    "paper_splits/test_truthfulqa_preference.json",
                    _PS2 + "test_truthfulqa_preference.json",
                    "07fc5571c3e1d240a2b1240a72c455f8bf7dac02e4370b16a8927292d1e40d71",
                ),
            ),
        ),
        Dataset(
            "alpaca",
            "substitute pairwise helpfulness data: Anthropic HH-RLHF helpful test splits "
            "(via DaehanKim/EasyRLHF); AlpacaFarm's own pairs are only on HuggingFace",
            "MIT (anthropics/hh-rlhf)",
            _files(
                (
                    "alpaca/hh-rlhf/helpful-base/test.jsonl.gz",
                    _HH + "helpful-base/test.jsonl.gz",
                    "8be3fc1a13b27901631696f2be6f184c799f1baeaf145f53ac5db24960adc37b",
                ),
                (
                    "alpaca/hh-rlhf/helpful-online/test.jsonl.gz",
                    _HH + "helpful-online/test.jsonl.gz",
                    "2094b210af6b2a792b1169d2930586c4b4b384d3b8a4a14460702d383c17df7f",
                ),
                (
                    "alpaca/hh-rlhf/helpful-rejection-sampled/test.jsonl.gz",
                    _HH + "helpful-rejection-sampled/test.jsonl.gz",
                    "6186fc698c638dd5c6bbb33e0c115762d6fdfac0a18969ff4901545307f89a54",
                ),
            ),
        ),
        Dataset(
            "ethics",
            "ETHICS (Hendrycks et al.), the unpacked tarball as committed in oughtinc/ice",
            "MIT",
            _files(
                *(
                    (f"ethics/{p}", _ETH + p, sha)
                    for p, sha in (
                        (
                            "README.txt",
                            "f6bd8458335baaeee187f34911c55555bbaa369d5e4597632dd1030cec0c1f11",
                        ),
                        (
                            "commonsense/cm_ambig.csv",
                            "91d37c93d66b2241a5845f588762cad5ad5f1d814db02aa76de21a4fcb5e9b15",
                        ),
                        (
                            "commonsense/cm_test.csv",
                            "aa521e2a45f0aa34c9b055d8022012044f705b35767627cf48919a1102b89115",
                        ),
                        (
                            "commonsense/cm_test_hard.csv",
                            "9689b2d7b72f3f21796c31cdc21522d8e11296fba21aa8bc3d9e8f0b9071b522",
                        ),
                        (
                            "deontology/deontology_test.csv",
                            "2b3be27cb1c8386919f164398c4f47b2a7d1e920515ac0a958b121866e8f7455",
                        ),
                        (
                            "deontology/deontology_test_hard.csv",
                            "461d7583a6517bb7904eb60e2fab6d5ef1c075003a500900dc91353f8ebbf450",
                        ),
                        (
                            "deontology/deontology_train.csv",
                            "f8433623e0daa3111818da3f6ea29eb724280f8fd288336806130a752e9eaffd",
                        ),
                        (
                            "justice/justice_test.csv",
                            "d7cc506a1055915d455a9244b26de573c75a760d416a8508a9420d41cbf40250",
                        ),
                        (
                            "justice/justice_test_hard.csv",
                            "b1c5fd1217878ceaf451a3e5bddc6f2cc3fdce64a6b6ce56026dbd631c91b960",
                        ),
                        (
                            "justice/justice_train.csv",
                            "d945f01ce0779cc9f41f854878d692bf88e172d8323f617900c125abbd383d47",
                        ),
                        (
                            "utilitarianism/util_test.csv",
                            "cd54a453d4db84179bef58fdb430a45d0823b512d0d7194c420ae0cba790fd50",
                        ),
                        (
                            "utilitarianism/util_test_hard.csv",
                            "9c288c76e208f6f4885dede8361b65e71a04238c9d518c6f4aa6039c58064d7a",
                        ),
                        (
                            "utilitarianism/util_train.csv",
                            "7a85de016925918dd2d20001657a1ba685be221488eb2ede67dd544e35a335a3",
                        ),
                        (
                            "virtue/virtue_test.csv",
                            "dea8526e233107b1747ba1d8e7c3031d75d306d5e68143b18a0f118007fc9470",
                        ),
                        (
                            "virtue/virtue_test_hard.csv",
                            "cd58cc861c18c832c08d89d4a1bfe473a71c45d95765956eb943ec12f153b16e",
                        ),
                        (
                            "virtue/virtue_train.csv",
                            "b666df098c9d4128fe35cabe800f977648adc5a2fa11c1dd0aaf1300717b93ba",
                        ),
                    )
                )
            ),
        ),
        Dataset(
            "daily_dilemmas",
            "DailyDilemmas (kellycyy/daily_dilemmas) and its HuggingFace per-action file",
            "CC BY 4.0",
            _files(
                (
                    "daily_dilemmas/dilemma.csv",
                    _DD + "data/dilemma.csv",
                    "8249dc0f1ee0caacd741d84f2773eadc8b925937c6c3b7fb1610f2ef7f74d557",
                ),
                (
                    "daily_dilemmas/dilemmas_with_detail_by_action_test.csv",
                    _DD + "data/dilemmas_with_detail_by_action_test.csv",
                    "6d4a1b180d91e20a277253ea045d3a60290d89445dbc4a449c951361e84ddbd2",
                ),
                (
                    "daily_dilemmas/values.csv",
                    _DD + "data/values.csv",
                    "4dfea050737fd9d5b3d185f5c9cb782d26e76d1c6dd32636367764573d128838",
                ),
                (
                    "daily_dilemmas/principle_openai.csv",
                    _DD + "data/principle_openai.csv",
                    "7105193eb311e60aa97354026099f489ac71410fb4ff6b066316056bfd9863f6",
                ),
                (
                    "daily_dilemmas/principle_claude.csv",
                    _DD + "data/principle_claude.csv",
                    "d673b71e9bef27f50b631f6252ab00c0a33341a05613ac3c72d21cb1143f67ee",
                ),
                (
                    "daily_dilemmas/metadata_croissant.json",
                    _DD + "metadata/crossiant",
                    "cd063b127c1e9f4b0b9b1ec9fbb3712cc1954faa7b02e7ea4f162f06c582e239",
                ),
                (
                    "daily_dilemmas/dilemma_to_action_to_values_aggregated.csv",
                    _DD2 + "dilemma_to_action_to_values_aggregated.csv",
                    "d01bea2d079fb815f69fc0a5635b294c38c6bb02661dc59c57551ea64e9d5c10",
                ),
            ),
        ),
        Dataset(
            "moral_foundations_vignettes",
            "Clifford et al. (2015) moral foundations vignettes with human ratings",
            "none stated (the vignettes are published in the paper)",
            _files(
                (
                    "moral_foundations_vignettes/vignettes.csv",
                    _MFV + "vignettes.csv",
                    "b69a0589517a7b1cc7ab1d8a5034721f468c172d888d765bc81d4dc5e920f0c1",
                ),
                (
                    "moral_foundations_vignettes/vignettes_classic_other_violate.jsonl",
                    _MFV2 + "vignettes_classic_other_violate.jsonl",
                    "68c275c23475c688d40b1826b7133fe9239e1472c51cd4839f99f5dcdd53940c",
                ),
            ),
        ),
        Dataset(
            "machiavelli",
            "MACHIAVELLI benchmark result tables (aypan17/machiavelli); no scene-level data",
            "MIT",
            _files(
                (
                    "machiavelli/main_results.csv",
                    _MACH + "results/main_results.csv",
                    "6c1470931bbd8b999eae83132349bafbdf1d836a9c04f83c33303b477206ab09",
                ),
                (
                    "machiavelli/main_results_expanded.csv",
                    _MACH + "results/main_results_expanded.csv",
                    "6bfbb6b28b7859ac871c30996b8b60f7561507ad1c71841a6e82a970db86d785",
                ),
                (
                    "machiavelli/count_achievement_change.csv",
                    _MACH + "results/count_achievement_change.csv",
                    "4ff4fbae6f4548b6350ba54867e07604134493cdd5b20fba56347fffdc5ffa88",
                ),
                (
                    "machiavelli/games.txt",
                    _MACH + "games.txt",
                    "2dddd2bc14fd78a7c1e00bbdd6bb8675582b7271be604fe9ad097b6c284082f9",
                ),
            ),
        ),
    )
}
