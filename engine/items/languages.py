"""Language codes of the supported Hugging Face datasets, mapped to prunescope's codes."""

from __future__ import annotations

XQUAD_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")

# TyDi QA ids start with the language name ("finnish-123…-0"); GoldP covers nine of the eleven.
TYDIQA_NAMES = {
    "arabic": "ar",
    "bengali": "bn",
    "english": "en",
    "finnish": "fi",
    "indonesian": "id",
    "japanese": "ja",
    "korean": "ko",
    "russian": "ru",
    "swahili": "sw",
    "telugu": "te",
    "thai": "th",
}
TYDIQA_GOLDP_LANGUAGES = ("ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te")

LANGUAGE_NAMES = {  # English names of languages as datasets write them (CohereForAI/include-base-44 …)
    **TYDIQA_NAMES,
    "chinese": "zh",
    "czech": "cs",
    "dutch": "nl",
    "french": "fr",
    "german": "de",
    "greek": "el",
    "hebrew": "he",
    "hindi": "hi",
    "italian": "it",
    "persian": "fa",
    "polish": "pl",
    "portuguese": "pt",
    "romanian": "ro",
    "spanish": "es",
    "swedish": "sv",
    "turkish": "tr",
    "ukrainian": "uk",
    "vietnamese": "vi",
}

# MKQA keys; the three Chinese variants become zh, zh-HK and zh-TW.
MKQA_KEYS = (
    "ar",
    "da",
    "de",
    "en",
    "es",
    "fi",
    "fr",
    "he",
    "hu",
    "it",
    "ja",
    "km",
    "ko",
    "ms",
    "nl",
    "no",
    "pl",
    "pt",
    "ru",
    "sv",
    "th",
    "tr",
    "vi",
    "zh_cn",
    "zh_hk",
    "zh_tw",
)


def mkqa_language(key: str) -> str:
    return {"zh_cn": "zh", "zh_hk": "zh-HK", "zh_tw": "zh-TW"}.get(key, key)


MKQA_LANGUAGES = tuple(mkqa_language(k) for k in MKQA_KEYS)

GLOBAL_MMLU_LANGUAGES = (
    "am",
    "ar",
    "bn",
    "cs",
    "de",
    "el",
    "en",
    "es",
    "fa",
    "fil",
    "fr",
    "ha",
    "he",
    "hi",
    "id",
    "ig",
    "it",
    "ja",
    "ko",
    "ky",
    "lt",
    "mg",
    "ms",
    "ne",
    "nl",
    "ny",
    "pl",
    "pt",
    "ro",
    "ru",
    "si",
    "sn",
    "so",
    "sr",
    "sv",
    "sw",
    "te",
    "tr",
    "uk",
    "vi",
    "yo",
    "zh",
)
GLOBAL_MMLU_LITE_LANGUAGES = (
    "ar",
    "bn",
    "de",
    "en",
    "es",
    "fr",
    "hi",
    "id",
    "it",
    "ja",
    "ko",
    "my",
    "pt",
    "sw",
    "yo",
    "zh",
)

# Belebele configs are FLORES-200 codes. These map to ISO 639-1 codes; any other config `xxx_Scrp`
# is used as language `xxx-Scrp` (and may be asked for by its FLORES name).
FLORES_TO_LANGUAGE = {
    "eng_Latn": "en",
    "deu_Latn": "de",
    "fra_Latn": "fr",
    "spa_Latn": "es",
    "ita_Latn": "it",
    "por_Latn": "pt",
    "nld_Latn": "nl",
    "pol_Latn": "pl",
    "ces_Latn": "cs",
    "ron_Latn": "ro",
    "hun_Latn": "hu",
    "fin_Latn": "fi",
    "swe_Latn": "sv",
    "dan_Latn": "da",
    "nob_Latn": "nb",
    "tur_Latn": "tr",
    "vie_Latn": "vi",
    "ind_Latn": "id",
    "zsm_Latn": "ms",
    "swh_Latn": "sw",
    "hau_Latn": "ha",
    "yor_Latn": "yo",
    "zul_Latn": "zu",
    "som_Latn": "so",
    "rus_Cyrl": "ru",
    "ukr_Cyrl": "uk",
    "bul_Cyrl": "bg",
    "srp_Cyrl": "sr",
    "ell_Grek": "el",
    "heb_Hebr": "he",
    "arb_Arab": "ar",
    "pes_Arab": "fa",
    "urd_Arab": "ur",
    "hin_Deva": "hi",
    "mar_Deva": "mr",
    "npi_Deva": "ne",
    "ben_Beng": "bn",
    "tam_Taml": "ta",
    "tel_Telu": "te",
    "tha_Thai": "th",
    "kor_Hang": "ko",
    "jpn_Jpan": "ja",
    "zho_Hans": "zh",
    "zho_Hant": "zh-Hant",
    "amh_Ethi": "am",
    "kat_Geor": "ka",
}
LANGUAGE_TO_FLORES = {v: k for k, v in FLORES_TO_LANGUAGE.items()}


def flores_language(config: str) -> str:
    """'eng_Latn' -> 'en'; an unmapped 'xxx_Scrp' -> 'xxx-Scrp'."""
    return FLORES_TO_LANGUAGE.get(config, config.replace("_", "-"))


def flores_config(language: str) -> str:
    """'en' or 'eng_Latn' -> 'eng_Latn'; 'xxx-Scrp' -> 'xxx_Scrp'."""
    if language in LANGUAGE_TO_FLORES:
        return LANGUAGE_TO_FLORES[language]
    return language.replace("-", "_")
