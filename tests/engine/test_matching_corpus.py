"""A hand-written corpus of open-generation outputs with the verdict a careful reader would give.

Each case: (language, output, golds (answer first, then aliases), options, expected rule, expected guards,
tag). Expected rule "exact" or "contains" means credited; "none" means not credited, and the guards
listed must be the ones the match record names (an empty set: the gold is simply not there). Tags:
plain, prefix, sentence (the answer inside a correct sentence), hedge, list, loop, short (short golds:
symbols, abbreviations, numbers), number, date, script (zh/ja without spaces), sample (the committed
sample study's outputs that issue 18 names). Written for prunescope; no text from any dataset.
"""

from __future__ import annotations

import pytest

from engine.matching import AnswerKey, Scoring, evidence, grade

H, L, S = {"hedge"}, {"loop"}, {"short"}
NONE: set[str] = set()

# option sets (the gold first in each golds list; options hold the gold and three distractors)
K_OPTS = ["K", "P", "Po", "Kr"]  # the sample study's potassium item, in every language
AG_OPTS = ["Au", "Si", "Sn", "Ag"]
AU_OPTS = ["Au", "Ag", "Ge", "Gd"]  # French `au` is also an article (matching v4: found where it stands alone)
LETTERS = ["A", "B", "C", "D"]  # generative MMLU's letter answers; English `a` is an article
EN_CAP = ["Paris", "Lyon", "Marseille", "Nice"]
EN_MOON = ["Neil Armstrong", "Buzz Aldrin", "Yuri Gagarin", "Michael Collins"]
YEARS = ["1965", "1969", "1972", "1981"]
BONES = ["206", "212", "180", "300"]
DATES = ["20 July 1969", "16 July 1969", "24 July 1969", "21 July 1968"]
EN_US = ["United States", "Canada", "Mexico", "Brazil"]
EN_YORK = ["York", "New York", "Boston", "Chicago"]
DE_CAP = ["Berlin", "München", "Hamburg", "Köln"]
DE_COMP = ["Wolfgang Amadeus Mozart", "Ludwig van Beethoven", "Johann Sebastian Bach", "Joseph Haydn"]
DE_US = ["Vereinigte Staaten", "Kanada", "Russland", "China"]
FR_CAP = ["Sydney", "Melbourne", "Canberra", "Perth"]
FR_CONT = ["Afrique", "Asie", "Europe", "Amérique du Sud"]
ES_PLAN = ["Venus", "Marte", "Mercurio", "Júpiter"]
ES_YEARS = ["1492", "1498", "1500", "1488"]
ES_CAP = ["El Cairo", "Alejandría", "Guiza", "Asuán"]
RU_CAP = ["Москва", "Санкт-Петербург", "Новосибирск", "Казань"]
RU_CONT = ["Африка", "Азия", "Европа", "Австралия"]
RU_YEARS = ["1957", "1961", "1965", "1969"]
RU_SPB = ["Санкт-Петербург", "Москва", "Казань", "Самара"]
ZH_CAP = ["北京", "上海", "广州", "深圳"]
ZH_GOLD = ["金", "银", "铜", "铁"]
JA_CAP = ["東京", "大阪", "京都", "名古屋"]
JA_MTN = ["富士山", "北岳", "奥穂高岳", "槍ヶ岳"]
AR_CAP = ["القاهرة", "الإسكندرية", "الجيزة", "أسوان"]
AR_CONT = ["أفريقيا", "آسيا", "أوروبا", "أستراليا"]

CASES: list[tuple[str, str, list[str], list[str], str, set[str], str]] = [
    # ---------------------------------------------------------------- en
    ("en", "Paris", ["Paris"], EN_CAP, "exact", NONE, "plain"),
    ("en", "Answer: Paris.", ["Paris"], EN_CAP, "exact", NONE, "prefix"),
    ("en", "The capital of France is Paris.", ["Paris"], EN_CAP, "contains", NONE, "sentence"),
    ("en", "Paris or Lyon", ["Paris"], EN_CAP, "none", H, "hedge"),
    ("en", "It could be Paris, but maybe Marseille.", ["Paris"], EN_CAP, "none", H, "hedge"),
    ("en", "Paris, Lyon, Marseille, Nice", ["Paris"], EN_CAP, "none", H, "list"),
    ("en", "Paris Paris Paris Paris Paris", ["Paris"], EN_CAP, "none", L, "loop"),
    ("en", "The capital is Paris. The capital is Paris. The capital is Paris.", ["Paris"], EN_CAP, "none", L, "loop"),
    ("en", "Parisian cafés are famous.", ["Paris"], EN_CAP, "none", NONE, "plain"),
    ("en", "Lyon", ["Paris"], EN_CAP, "none", NONE, "plain"),
    ("en", "The answer is A.", ["A"], LETTERS, "contains", NONE, "short"),
    ("en", "(A) is correct", ["A"], LETTERS, "contains", NONE, "short"),
    ("en", "A is correct.", ["A"], LETTERS, "none", NONE, "short"),
    ("en", "A or B", ["A"], LETTERS, "none", NONE, "hedge"),
    ("en", "A, B", ["A"], LETTERS, "none", H, "hedge"),
    ("en", "The chemical symbol for potassium is K.", ["K"], K_OPTS, "contains", NONE, "short"),
    ("en", "K", ["K"], K_OPTS, "exact", NONE, "short"),
    ("en", "K-pop is popular.", ["K"], K_OPTS, "none", S, "short"),
    ("en", "Kr", ["K"], K_OPTS, "none", NONE, "short"),
    ("en", "K or Kr", ["K"], K_OPTS, "none", H, "hedge"),
    ("en", "M K M K M K M K", ["K"], K_OPTS, "none", L, "loop"),
    ("en", "The symbol is (K).", ["K"], K_OPTS, "contains", NONE, "short"),
    ("en", "Apollo 11 landed on the Moon in 1969.", ["1969"], YEARS, "contains", NONE, "number"),
    ("en", "It happened in 19690.", ["1969"], YEARS, "none", NONE, "number"),
    ("en", "Either 1969 or 1972.", ["1969"], YEARS, "none", H, "number"),
    ("en", "An adult human has 206 bones.", ["206"], BONES, "contains", NONE, "number"),
    ("en", "The road is 1,300 km long.", ["300"], BONES, "none", S, "number"),
    ("en", "It was on 20 July 1969.", ["20 July 1969"], DATES, "contains", NONE, "date"),
    ("en", "20 July 1969 or 16 July 1969", ["20 July 1969"], DATES, "none", H, "date"),
    ("en", "It is the USA.", ["United States", "USA"], EN_US, "contains", NONE, "short"),
    ("en", "A USA-based company.", ["United States", "USA"], EN_US, "none", S, "short"),
    ("en", "The United States, not Canada.", ["United States", "USA"], EN_US, "none", H, "hedge"),
    (
        "en",
        "The first person to walk on the Moon was Neil Armstrong.",
        ["Neil Armstrong"],
        EN_MOON,
        "contains",
        NONE,
        "sentence",
    ),
    ("en", "Neil Armstrong and Buzz Aldrin", ["Neil Armstrong"], EN_MOON, "none", H, "list"),
    ("en", "New York", ["York"], EN_YORK, "none", H, "hedge"),
    ("en", "The city of York.", ["York"], EN_YORK, "contains", NONE, "sentence"),
    (
        "en",
        "The island is Bora Bora.",
        ["Bora Bora"],
        ["Bora Bora", "Tahiti", "Moorea", "Fiji"],
        "contains",
        NONE,
        "sentence",
    ),
    ("en", "The silver symbol is Ag.", ["Ag"], AG_OPTS, "contains", NONE, "short"),
    ("en", "Ag, Au", ["Ag"], AG_OPTS, "none", H, "list"),
    # ---------------------------------------------------------------- de
    ("de", "Berlin", ["Berlin"], DE_CAP, "exact", NONE, "plain"),
    ("de", "Antwort: Berlin", ["Berlin"], DE_CAP, "exact", NONE, "prefix"),
    ("de", "Die Hauptstadt von Deutschland ist Berlin.", ["Berlin"], DE_CAP, "contains", NONE, "sentence"),
    ("de", "Berlin oder München", ["Berlin"], DE_CAP, "none", H, "hedge"),
    ("de", "Es ist entweder Berlin oder Köln.", ["Berlin"], DE_CAP, "none", H, "hedge"),
    ("de", "Berlin, Hamburg, München, Köln", ["Berlin"], DE_CAP, "none", H, "list"),
    ("de", "Berlin Berlin Berlin Berlin", ["Berlin"], DE_CAP, "none", L, "loop"),
    ("de", "Berliner Luft", ["Berlin"], DE_CAP, "none", NONE, "plain"),
    ("de", "by by by M and M. M K M K", ["K"], K_OPTS, "none", L, "sample"),
    ("de", "The K is K is K.", ["K"], K_OPTS, "none", L, "loop"),
    ("de", "Das Symbol von Kalium ist K.", ["K"], K_OPTS, "contains", NONE, "short"),
    ("de", "K.", ["K"], K_OPTS, "exact", NONE, "short"),
    ("de", "Kalium-40 (K-40) ist radioaktiv.", ["K"], K_OPTS, "none", S, "short"),
    ("de", "Die Mondlandung war 1969.", ["1969"], YEARS, "contains", NONE, "number"),
    ("de", "1969, 1972 oder 1981", ["1969"], YEARS, "none", H, "number"),
    ("de", "Am 20 July 1969", ["20 July 1969"], DATES, "contains", NONE, "date"),
    (
        "de",
        "die Vereinigten Staaten",
        ["Vereinigte Staaten", "Vereinigten Staaten"],
        DE_US,
        "exact",
        NONE,
        "plain",
    ),
    ("de", "Kanada, Russland, China, Vereinigte Staaten", ["Russland"], DE_US, "none", H, "list"),
    ("de", "Das größte Land ist Russland.", ["Russland"], DE_US, "contains", NONE, "sentence"),
    (
        "de",
        "Die Zauberflöte ist von Mozart.",
        ["Wolfgang Amadeus Mozart", "Mozart"],
        DE_COMP,
        "contains",
        NONE,
        "sentence",
    ),
    (
        "de",
        "Wolfgang Amadeus Mozart oder Joseph Haydn",
        ["Wolfgang Amadeus Mozart", "Mozart"],
        DE_COMP,
        "none",
        H,
        "hedge",
    ),
    ("de", "Mozart Mozart Mozart Mozart Mozart", ["Wolfgang Amadeus Mozart", "Mozart"], DE_COMP, "none", L, "loop"),
    ("de", "Das Symbol für Silber ist Ag.", ["Ag"], AG_OPTS, "contains", NONE, "short"),
    ("de", "Silber: Ag oder Au", ["Ag"], AG_OPTS, "none", H, "hedge"),
    # ---------------------------------------------------------------- fr
    ("fr", "Canberra", ["Canberra"], FR_CAP, "exact", NONE, "plain"),
    ("fr", "Réponse : Canberra", ["Canberra"], FR_CAP, "exact", NONE, "prefix"),
    ("fr", "La capitale de l'Australie est Canberra.", ["Canberra"], FR_CAP, "contains", NONE, "sentence"),
    ("fr", "Canberra ou Sydney", ["Canberra"], FR_CAP, "none", H, "hedge"),
    ("fr", "Sydney, Melbourne, Canberra, Perth", ["Canberra"], FR_CAP, "none", H, "list"),
    ("fr", "Canberra Canberra Canberra", ["Canberra"], FR_CAP, "none", L, "loop"),
    ("fr", "Peut-être Canberra, peut-être Perth.", ["Canberra"], FR_CAP, "none", H, "hedge"),
    ("fr", "Au, Si, Sn, Ag", ["Ag"], AG_OPTS, "none", H, "list"),
    ("fr", "Le symbole de l'argent est Ag.", ["Ag"], AG_OPTS, "contains", NONE, "short"),
    ("fr", "Le symbole de l'or est Au.", ["Au"], AU_OPTS, "contains", NONE, "short"),
    ("fr", "Au", ["Au"], AU_OPTS, "exact", NONE, "short"),
    ("fr", "Au Japon, on dit Ag.", ["Au"], AU_OPTS, "none", NONE, "short"),
    ("fr", "C'est Ag au total.", ["Ag"], AG_OPTS, "contains", NONE, "sentence"),
    ("fr", "Ag, pas Au.", ["Ag"], AG_OPTS, "none", H, "hedge"),
    ("fr", "K", ["K"], K_OPTS, "exact", NONE, "short"),
    ("fr", 'The correct answer is "K', ["K"], K_OPTS, "contains", NONE, "short"),
    ("fr", "by by by M. M. M K M K", ["K"], K_OPTS, "none", L, "loop"),
    ("fr", "L’Afrique", ["Afrique"], FR_CONT, "exact", NONE, "plain"),
    ("fr", "L'Égypte se trouve en Afrique.", ["Afrique"], FR_CONT, "contains", NONE, "sentence"),
    ("fr", "C'est en Afrique ou en Asie.", ["Afrique"], FR_CONT, "none", H, "hedge"),
    ("fr", "Afrique, Afrique, Afrique, Afrique", ["Afrique"], FR_CONT, "none", L, "loop"),
    ("fr", "Africain", ["Afrique"], FR_CONT, "none", NONE, "plain"),
    ("fr", "Il y a 206 os dans le corps humain.", ["206"], BONES, "contains", NONE, "number"),
    ("fr", "206 ou 212", ["206"], BONES, "none", H, "number"),
    ("fr", "On a marché sur la Lune en 1969.", ["1969"], YEARS, "contains", NONE, "number"),
    ("fr", "Le 20 July 1969, Apollo 11 a aluni.", ["20 July 1969"], DATES, "contains", NONE, "date"),
    # ---------------------------------------------------------------- es
    ("es", "Venus", ["Venus"], ES_PLAN, "exact", NONE, "plain"),
    ("es", "Respuesta: Venus", ["Venus"], ES_PLAN, "exact", NONE, "prefix"),
    ("es", "El planeta más caliente es Venus.", ["Venus"], ES_PLAN, "contains", NONE, "sentence"),
    ("es", "The planet is Venus.", ["Venus"], ES_PLAN, "contains", NONE, "sentence"),
    ("es", "Venus o Marte", ["Venus"], ES_PLAN, "none", H, "hedge"),
    ("es", "Venus, Marte, Mercurio y Júpiter", ["Venus"], ES_PLAN, "none", H, "list"),
    ("es", "Venus Venus Venus Venus", ["Venus"], ES_PLAN, "none", L, "loop"),
    ("es", "El planeta Venus, el planeta Venus, el planeta Venus", ["Venus"], ES_PLAN, "none", L, "loop"),
    ("es", "Venusiano", ["Venus"], ES_PLAN, "none", NONE, "plain"),
    ("es", "El símbolo del potasio es K.", ["K"], K_OPTS, "contains", NONE, "short"),
    ("es", 'The answer is "K.', ["K"], K_OPTS, "contains", NONE, "short"),
    ("es", "M K M K M K M K M K M K M K M K", ["K"], K_OPTS, "none", L, "loop"),
    ("es", "K, P, Po", ["K"], K_OPTS, "none", H, "list"),
    ("es", "Colón llegó a América en 1492.", ["1492"], ES_YEARS, "contains", NONE, "number"),
    ("es", "En 1492 o en 1498", ["1492"], ES_YEARS, "none", H, "number"),
    ("es", "En el año 14920", ["1492"], ES_YEARS, "none", NONE, "number"),
    ("es", "El 12-1492", ["1492"], ES_YEARS, "none", S, "date"),
    ("es", "La respuesta es: El Cairo", ["El Cairo"], ES_CAP, "exact", NONE, "prefix"),
    ("es", "La capital de Egipto es El Cairo.", ["El Cairo"], ES_CAP, "contains", NONE, "sentence"),
    ("es", "El Cairo o Alejandría", ["El Cairo"], ES_CAP, "none", H, "hedge"),
    ("es", "Tiene 206 huesos.", ["206"], BONES, "contains", NONE, "number"),
    # ---------------------------------------------------------------- ru
    ("ru", "Москва", ["Москва"], RU_CAP, "exact", NONE, "plain"),
    ("ru", "Ответ: Москва", ["Москва"], RU_CAP, "exact", NONE, "prefix"),
    ("ru", "Столица России — Москва.", ["Москва"], RU_CAP, "contains", NONE, "sentence"),
    ("ru", "Москва или Казань", ["Москва"], RU_CAP, "none", H, "hedge"),
    ("ru", "Москва, Санкт-Петербург, Казань", ["Москва"], RU_CAP, "none", H, "list"),
    ("ru", "Москва Москва Москва", ["Москва"], RU_CAP, "none", L, "loop"),
    ("ru", "Московский", ["Москва"], RU_CAP, "none", NONE, "plain"),
    ("ru", "Санкт-Петербург", ["Санкт-Петербург"], RU_SPB, "exact", NONE, "plain"),
    ("ru", "Это город Санкт-Петербург.", ["Санкт-Петербург"], RU_SPB, "contains", NONE, "sentence"),
    ("ru", "Санкт-Петербург или Москва", ["Санкт-Петербург"], RU_SPB, "none", H, "hedge"),
    ("ru", "Это было в Африке.", ["Африка", "Африке"], RU_CONT, "contains", NONE, "sentence"),
    ("ru", "Африка или Азия", ["Африка", "Африке"], RU_CONT, "none", H, "hedge"),
    ("ru", "Африка Африка Африка Африка", ["Африка", "Африке"], RU_CONT, "none", L, "loop"),
    ("ru", "Символ калия — K.", ["K"], K_OPTS, "contains", NONE, "short"),
    ("ru", "K", ["K"], K_OPTS, "exact", NONE, "short"),
    ("ru", "Kr или K", ["K"], K_OPTS, "none", H, "hedge"),
    ("ru", "Гагарин полетел в космос в 1961 году.", ["1961"], RU_YEARS, "contains", NONE, "number"),
    ("ru", "В 1961 или 1965 году", ["1961"], RU_YEARS, "none", H, "number"),
    ("ru", "Номер 1961-A", ["1961"], RU_YEARS, "none", S, "number"),
    ("ru", "12 апреля 1961 года", ["12 апреля 1961"], ["12 апреля 1961", "4 октября 1957"], "contains", NONE, "date"),
    ("ru", "Фёдор Достоевский", ["Федор Достоевский"], ["Федор Достоевский", "Лев Толстой"], "exact", NONE, "plain"),
    # ---------------------------------------------------------------- zh
    ("zh", "北京", ["北京"], ZH_CAP, "exact", NONE, "script"),
    ("zh", "答案：北京", ["北京"], ZH_CAP, "exact", NONE, "prefix"),
    ("zh", "中国的首都是北京。", ["北京"], ZH_CAP, "contains", NONE, "script"),
    ("zh", "北京或上海", ["北京"], ZH_CAP, "none", H, "hedge"),
    ("zh", "北京、上海、广州", ["北京"], ZH_CAP, "none", H, "list"),
    ("zh", "北京北京北京北京", ["北京"], ZH_CAP, "none", L, "loop"),
    ("zh", "首都是北京，首都是北京，首都是北京", ["北京"], ZH_CAP, "none", L, "loop"),
    ("zh", "南京", ["北京"], ZH_CAP, "none", NONE, "script"),
    ("zh", "上海", ["北京"], ZH_CAP, "none", NONE, "script"),
    ("zh", "Sou C M K M K M K M K M K M K", ["K"], K_OPTS, "none", L, "sample"),
    ("zh", "钾的符号是K", ["K"], K_OPTS, "contains", NONE, "short"),
    ("zh", "钾的符号是K。", ["K"], K_OPTS, "contains", NONE, "short"),
    ("zh", "钾的符号是Kr", ["K"], K_OPTS, "none", NONE, "short"),
    ("zh", "K还是Kr", ["K"], K_OPTS, "none", H, "hedge"),
    ("zh", 'The answer is "K.', ["K"], K_OPTS, "contains", NONE, "short"),
    ("zh", "人类于1969年登上月球。", ["1969"], YEARS, "contains", NONE, "number"),
    ("zh", "1969年或1972年", ["1969"], YEARS, "none", H, "number"),
    ("zh", "金", ["金"], ZH_GOLD, "exact", NONE, "script"),
    ("zh", "是黄金。", ["金"], ZH_GOLD, "contains", NONE, "script"),
    ("zh", "金和银", ["金"], ZH_GOLD, "none", H, "hedge"),
    ("zh", "金金金金金金", ["金"], ZH_GOLD, "none", L, "loop"),
    # ---------------------------------------------------------------- ja
    ("ja", "東京", ["東京", "東京都"], JA_CAP, "exact", NONE, "script"),
    ("ja", "「東京都」", ["東京", "東京都"], JA_CAP, "exact", NONE, "script"),
    ("ja", "答え：東京", ["東京", "東京都"], JA_CAP, "exact", NONE, "prefix"),
    ("ja", "東京です。", ["東京", "東京都"], JA_CAP, "contains", NONE, "script"),
    ("ja", "日本の首都は東京都です。", ["東京", "東京都"], JA_CAP, "contains", NONE, "script"),
    ("ja", "東京か大阪", ["東京", "東京都"], JA_CAP, "none", H, "hedge"),
    ("ja", "東京、大阪、京都", ["東京", "東京都"], JA_CAP, "none", H, "list"),
    ("ja", "東京東京東京", ["東京", "東京都"], JA_CAP, "none", L, "loop"),
    ("ja", "京都です", ["東京", "東京都"], JA_CAP, "none", NONE, "script"),
    ("ja", "大阪", ["東京", "東京都"], JA_CAP, "none", NONE, "script"),
    ("ja", "カリウムの元素記号はKです。", ["K"], K_OPTS, "contains", NONE, "short"),
    ("ja", "Kです", ["K"], K_OPTS, "contains", NONE, "short"),
    ("ja", "cyclopol.K", ["K"], K_OPTS, "none", S, "short"),
    ("ja", "M.M K M K M K M K M K M K M K", ["K"], K_OPTS, "none", L, "loop"),
    ("ja", "KかKr", ["K"], K_OPTS, "none", H, "hedge"),
    (
        "ja",
        "1964年に東京オリンピックが開かれた。",
        ["1964"],
        ["1964", "1972", "1998", "2020"],
        "contains",
        NONE,
        "number",
    ),
    ("ja", "日本一高い山は富士山です。", ["富士山"], JA_MTN, "contains", NONE, "script"),
    ("ja", "富士山か北岳", ["富士山"], JA_MTN, "none", H, "hedge"),
    ("ja", "富士山富士山富士山", ["富士山"], JA_MTN, "none", L, "loop"),
    ("ja", "富士", ["富士山"], JA_MTN, "none", NONE, "script"),
    # ---------------------------------------------------------------- ar
    ("ar", "القاهرة", ["القاهرة"], AR_CAP, "exact", NONE, "plain"),
    ("ar", "الإجابة: القاهرة", ["القاهرة"], AR_CAP, "exact", NONE, "prefix"),
    ("ar", "عاصمة مصر هي القاهرة", ["القاهرة"], AR_CAP, "contains", NONE, "sentence"),
    ("ar", "القاهرة أو الإسكندرية", ["القاهرة"], AR_CAP, "none", H, "hedge"),
    ("ar", "القاهرة، الجيزة، أسوان", ["القاهرة"], AR_CAP, "none", H, "list"),
    ("ar", "القاهرة القاهرة القاهرة", ["القاهرة"], AR_CAP, "none", L, "loop"),
    ("ar", "القاهرية", ["القاهرة"], AR_CAP, "none", NONE, "plain"),
    ("ar", "الإسكندرية", ["القاهرة"], AR_CAP, "none", NONE, "plain"),
    ("ar", "إفريقيا", ["أفريقيا"], AR_CONT, "exact", NONE, "plain"),
    ("ar", "تقع مصر في أفريقيا.", ["أفريقيا"], AR_CONT, "contains", NONE, "sentence"),
    ("ar", "أفريقيا أو آسيا", ["أفريقيا"], AR_CONT, "none", H, "hedge"),
    ("ar", "رمز البوتاسيوم هو K", ["K"], K_OPTS, "contains", NONE, "short"),
    ("ar", "The correct answer is: K.", ["K"], K_OPTS, "contains", NONE, "short"),
    ("ar", "S.S Put S Put M.S Put M Put M K M K", ["K"], K_OPTS, "none", L, "loop"),
    ("ar", "K أو P", ["K"], K_OPTS, "none", H, "hedge"),
    ("ar", "الرمز K-40", ["K"], K_OPTS, "none", S, "short"),
    ("ar", "هبط الإنسان على القمر عام 1969", ["1969"], YEARS, "contains", NONE, "number"),
    ("ar", "عام 1969 أو 1972", ["1969"], YEARS, "none", H, "number"),
    (
        "ar",
        "The correct answer is: الزهرة",
        ["الزهرة"],
        ["الزهرة", "المريخ", "عطارد", "المشتري"],
        "contains",
        NONE,
        "sentence",
    ),
]

LANGUAGES = {"en", "de", "fr", "es", "ru", "zh", "ja", "ar"}
TAGS = {"plain", "prefix", "sentence", "hedge", "list", "loop", "short", "number", "date", "script", "sample"}


def test_the_corpus_covers_what_it_claims() -> None:
    assert len(CASES) >= 150
    assert {c[0] for c in CASES} == LANGUAGES
    assert {c[6] for c in CASES} == TAGS
    per_language = {lang: sum(c[0] == lang for c in CASES) for lang in LANGUAGES}
    assert min(per_language.values()) >= 15, per_language
    assert len({(c[0], c[1], tuple(c[2])) for c in CASES}) == len(CASES)  # no case twice
    for lang, _out, golds, options, *_ in CASES:
        assert golds[0] in options, (lang, golds)  # the answer is one of the options, as in every item


@pytest.mark.parametrize(("lang", "output", "golds", "options", "rule", "guards", "tag"), CASES)
def test_verdict(lang: str, output: str, golds: list[str], options: list[str], rule: str, guards: set[str], tag: str):
    m = grade(output, AnswerKey.of(golds, lang, options))
    assert (m.rule, set(m.guards)) == (rule, guards), m
    assert m.correct == (rule != "none")
    if guards:  # a guard fires only where a gold was found, and the record names it
        assert m.alias in golds
    assert m.to_dict()["guards"] == list(m.guards)


def test_the_two_sample_cases_of_issue_18_are_not_credited() -> None:
    sample = [c for c in CASES if c[6] == "sample"]
    assert [(c[0], c[1]) for c in sample] == [
        ("de", "by by by M and M. M K M K"),
        ("zh", "Sou C M K M K M K M K M K M K"),
    ]
    for lang, output, golds, options, *_ in sample:
        m = grade(output, AnswerKey.of(golds, lang, options))
        assert not m.correct and m.degenerate and m.guards == ("loop",)
        # without guards, containment credits them: exactly what the issue reported
        assert grade(output, AnswerKey.of(golds, lang, options), Scoring.parse("contains", "none")).correct


def test_unguarded_containment_credits_every_guarded_case_that_contains_the_gold() -> None:
    unguarded = Scoring.parse("contains", "none")
    for lang, output, golds, options, _rule, guards, _tag in CASES:
        if guards:
            ev = evidence(output, AnswerKey.of(golds, lang, options))
            assert ev.verdict(unguarded).correct, (lang, output)
