"""capitals: "The capital of X is Y." with wrong capitals drawn from other countries.

Generated, seeded, no external data. Each country is one question; it gets its correct
capital and `claims_per_country - 1` wrong ones, each the capital of another country, so
labels are balanced with the default of 2 claims per country (1 true, 1 false).

Consistency: a country has one capital, so two different capitals for one country are
never both right: every pair of claims about one country is AT_MOST_ONE_TRUE. That holds
by the meaning of the claims, whatever their labels.

Countries whose capital is disputed, split between cities, recently moved or named like
the country (e.g. Bolivia, South Africa, the Netherlands, Indonesia, Kazakhstan,
Luxembourg) are left out, and so is Georgia (also a US state).
"""

from __future__ import annotations

import random

from icm.errors import ConfigError
from icm.testbeds import register_testbed
from icm.testbeds.base import CLAIM_TEMPLATE, ClaimTable, LoadOptions, Testbed
from icm.testbeds.claim_groups import ClaimDraft, ClaimTableBuilder, every_pair, numbered_ids
from icm.testbeds.shared_rows import in_test_split

TEST_FRACTION = 0.3

# (country as written in a sentence, capital)
CAPITALS: tuple[tuple[str, str], ...] = (
    # Europe
    ("Albania", "Tirana"),
    ("Armenia", "Yerevan"),
    ("Austria", "Vienna"),
    ("Azerbaijan", "Baku"),
    ("Belarus", "Minsk"),
    ("Belgium", "Brussels"),
    ("Bosnia and Herzegovina", "Sarajevo"),
    ("Bulgaria", "Sofia"),
    ("Croatia", "Zagreb"),
    ("Cyprus", "Nicosia"),
    ("the Czech Republic", "Prague"),
    ("Denmark", "Copenhagen"),
    ("Estonia", "Tallinn"),
    ("Finland", "Helsinki"),
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Greece", "Athens"),
    ("Hungary", "Budapest"),
    ("Iceland", "Reykjavik"),
    ("Ireland", "Dublin"),
    ("Italy", "Rome"),
    ("Latvia", "Riga"),
    ("Lithuania", "Vilnius"),
    ("Malta", "Valletta"),
    ("Moldova", "Chisinau"),
    ("North Macedonia", "Skopje"),
    ("Norway", "Oslo"),
    ("Poland", "Warsaw"),
    ("Portugal", "Lisbon"),
    ("Romania", "Bucharest"),
    ("Russia", "Moscow"),
    ("Serbia", "Belgrade"),
    ("Slovakia", "Bratislava"),
    ("Slovenia", "Ljubljana"),
    ("Spain", "Madrid"),
    ("Sweden", "Stockholm"),
    ("Ukraine", "Kyiv"),
    ("the United Kingdom", "London"),
    # Asia
    ("Afghanistan", "Kabul"),
    ("Bahrain", "Manama"),
    ("Bangladesh", "Dhaka"),
    ("Bhutan", "Thimphu"),
    ("Brunei", "Bandar Seri Begawan"),
    ("Cambodia", "Phnom Penh"),
    ("China", "Beijing"),
    ("India", "New Delhi"),
    ("Iran", "Tehran"),
    ("Iraq", "Baghdad"),
    ("Japan", "Tokyo"),
    ("Jordan", "Amman"),
    ("Kyrgyzstan", "Bishkek"),
    ("Laos", "Vientiane"),
    ("Lebanon", "Beirut"),
    ("Mongolia", "Ulaanbaatar"),
    ("Nepal", "Kathmandu"),
    ("North Korea", "Pyongyang"),
    ("Oman", "Muscat"),
    ("Pakistan", "Islamabad"),
    ("the Philippines", "Manila"),
    ("Qatar", "Doha"),
    ("Saudi Arabia", "Riyadh"),
    ("South Korea", "Seoul"),
    ("Syria", "Damascus"),
    ("Tajikistan", "Dushanbe"),
    ("Thailand", "Bangkok"),
    ("Turkey", "Ankara"),
    ("Turkmenistan", "Ashgabat"),
    ("the United Arab Emirates", "Abu Dhabi"),
    ("Uzbekistan", "Tashkent"),
    ("Vietnam", "Hanoi"),
    # Africa
    ("Algeria", "Algiers"),
    ("Angola", "Luanda"),
    ("Botswana", "Gaborone"),
    ("Burkina Faso", "Ouagadougou"),
    ("Cameroon", "Yaoundé"),
    ("the Central African Republic", "Bangui"),
    ("Chad", "N'Djamena"),
    ("the Democratic Republic of the Congo", "Kinshasa"),
    ("Egypt", "Cairo"),
    ("Eritrea", "Asmara"),
    ("Ethiopia", "Addis Ababa"),
    ("Gabon", "Libreville"),
    ("Ghana", "Accra"),
    ("Guinea", "Conakry"),
    ("Kenya", "Nairobi"),
    ("Lesotho", "Maseru"),
    ("Liberia", "Monrovia"),
    ("Libya", "Tripoli"),
    ("Madagascar", "Antananarivo"),
    ("Malawi", "Lilongwe"),
    ("Mali", "Bamako"),
    ("Mauritania", "Nouakchott"),
    ("Morocco", "Rabat"),
    ("Mozambique", "Maputo"),
    ("Namibia", "Windhoek"),
    ("Niger", "Niamey"),
    ("Nigeria", "Abuja"),
    ("the Republic of the Congo", "Brazzaville"),
    ("Rwanda", "Kigali"),
    ("Senegal", "Dakar"),
    ("Sierra Leone", "Freetown"),
    ("Somalia", "Mogadishu"),
    ("South Sudan", "Juba"),
    ("Togo", "Lomé"),
    ("Tunisia", "Tunis"),
    ("Uganda", "Kampala"),
    ("Zambia", "Lusaka"),
    ("Zimbabwe", "Harare"),
    # The Americas
    ("Argentina", "Buenos Aires"),
    ("the Bahamas", "Nassau"),
    ("Barbados", "Bridgetown"),
    ("Belize", "Belmopan"),
    ("Brazil", "Brasília"),
    ("Canada", "Ottawa"),
    ("Chile", "Santiago"),
    ("Colombia", "Bogotá"),
    ("Costa Rica", "San José"),
    ("Cuba", "Havana"),
    ("the Dominican Republic", "Santo Domingo"),
    ("Ecuador", "Quito"),
    ("El Salvador", "San Salvador"),
    ("Guatemala", "Guatemala City"),
    ("Guyana", "Georgetown"),
    ("Haiti", "Port-au-Prince"),
    ("Honduras", "Tegucigalpa"),
    ("Jamaica", "Kingston"),
    ("Mexico", "Mexico City"),
    ("Nicaragua", "Managua"),
    ("Panama", "Panama City"),
    ("Paraguay", "Asunción"),
    ("Peru", "Lima"),
    ("Suriname", "Paramaribo"),
    ("Trinidad and Tobago", "Port of Spain"),
    ("the United States", "Washington, D.C."),
    ("Uruguay", "Montevideo"),
    ("Venezuela", "Caracas"),
    # Oceania
    ("Australia", "Canberra"),
    ("Fiji", "Suva"),
    ("New Zealand", "Wellington"),
    ("Papua New Guinea", "Port Moresby"),
    ("Samoa", "Apia"),
    ("Tonga", "Nuku'alofa"),
)


def split_of(country: str) -> str:
    return "test" if in_test_split(country, TEST_FRACTION, salt="capitals") else "train"


@register_testbed
class Capitals(Testbed):
    name = "capitals"
    version = 1
    summary = "which city is a country's capital; wrong capitals come from other countries"
    source = (
        f"generated from a list of {len(CAPITALS)} countries in icm/testbeds/capitals.py "
        "(no external data)"
    )
    license = "generated by icm (MIT); facts"
    template = CLAIM_TEMPLATE
    consistency_rule = (
        "one country, one capital, and the correct capital is always among its claims: "
        "exactly one is true (two claims: OPPOSITE; more: pairwise AT_MOST_ONE_TRUE plus "
        "AT_LEAST_ONE_TRUE)"
    )
    needs_data = False
    claims_per_country = 2  # 1 true + 1 false: balanced labels
    balanced = True

    def load_split(self, split: str, options: LoadOptions) -> ClaimTable:
        per = self.claims_per_country
        if not 2 <= per <= 10:
            raise ConfigError(f"claims_per_country: must be 2..10, got {per}")
        # Seed-independent: the seed only picks which countries (Testbed.load samples).
        rng = random.Random(f"capitals/{split}/{per}")
        others = [cap for _, cap in CAPITALS]
        builder = ClaimTableBuilder(self.name, split)
        for q, (country, capital) in enumerate(CAPITALS):
            if split_of(country) != split:
                continue
            wrong = rng.sample([c for c in others if c != capital], per - 1)
            answers = [(capital, True)] + [(w, False) for w in wrong]
            rng.shuffle(answers)
            key = country.removeprefix("the ").replace(" ", "-").lower()

            def draft(answer: tuple[str, bool], country: str = country) -> ClaimDraft:
                city, gold = answer
                prompt = CLAIM_TEMPLATE.format(
                    question=f"What is the capital of {country}?",
                    claim=f"The capital of {country} is {city.rstrip('.')}.",
                )
                return ClaimDraft(prompt, gold, {"country": country, "city": city})

            # The correct capital is always among the claims: exactly one is true.
            builder.add_group(
                f"c{q}",
                answers,
                draft,
                ids=numbered_ids(f"{split}-{key}", per),
                pairs=every_pair("opposite" if per == 2 else "at_most_one_true"),
                at_least_one_true=per > 2,
            )
        return builder.table()
