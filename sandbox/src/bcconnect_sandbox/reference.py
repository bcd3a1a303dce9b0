"""Static reference tables the synthetic population is drawn from.

Everything here is synthetic or illustrative: GP practice codes and names are made up (they only look like
ODS codes), names reflect the region's diversity without describing anyone, and clinical codes are chosen as
plausible SNOMED CT / LOINC / dm+d concepts for test data — not a terminology source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# --- demographics -----------------------------------------------------------------------------------------

#: Age bands (low, high inclusive) and their share of the population, roughly a UK urban pyramid.
AGE_BANDS: Final = (
    ((0, 4), 6.2),
    ((5, 17), 16.0),
    ((18, 29), 15.5),
    ((30, 44), 19.5),
    ((45, 64), 24.0),
    ((65, 79), 13.5),
    ((80, 100), 5.3),
)

#: NHS Data Dictionary ethnic category codes with an approximate Black Country share (percent).
ETHNIC_WEIGHTS: Final = (
    ("A", 67.5),
    ("B", 0.5),
    ("C", 4.0),
    ("D", 1.6),
    ("E", 0.3),
    ("F", 0.6),
    ("G", 0.5),
    ("H", 9.0),
    ("J", 4.2),
    ("K", 1.0),
    ("L", 1.6),
    ("M", 2.6),
    ("N", 2.0),
    ("P", 0.6),
    ("R", 0.4),
    ("S", 1.5),
    ("Z", 1.5),
    ("99", 0.6),
)

#: Which name pool each ethnic category draws from.
NAME_POOL_OF_ETHNICITY: Final = {
    "A": "british",
    "B": "british",
    "C": "european",
    "D": "caribbean",
    "E": "african",
    "F": "south_asian",
    "G": "british",
    "H": "south_asian",
    "J": "pakistani",
    "K": "bangladeshi",
    "L": "south_asian",
    "M": "caribbean",
    "N": "african",
    "P": "african",
    "R": "chinese",
    "S": "middle_eastern",
    "Z": "british",
    "99": "british",
}


@dataclass(frozen=True, slots=True)
class NamePool:
    """Given names by sex and family names of one naming tradition."""

    male: tuple[str, ...]
    female: tuple[str, ...]
    family: tuple[str, ...]


NAME_POOLS: Final = {
    "british": NamePool(
        (
            "James",
            "William",
            "Robert",
            "David",
            "Thomas",
            "Daniel",
            "Michael",
            "Jack",
            "Harry",
            "George",
            "Richard",
            "Paul",
            "Mark",
            "Stephen",
            "Anthony",
            "Joseph",
            "Christopher",
            "Oliver",
            "Alfie",
            "Kevin",
        ),
        (
            "Margaret",
            "Elizabeth",
            "Susan",
            "Sarah",
            "Emma",
            "Jessica",
            "Olivia",
            "Amelia",
            "Patricia",
            "Jennifer",
            "Katherine",
            "Rebecca",
            "Deborah",
            "Victoria",
            "Jacqueline",
            "Samantha",
            "Lily",
            "Joan",
            "Christine",
            "Alexandra",
        ),
        (
            "Smith",
            "Jones",
            "Taylor",
            "Brown",
            "Williams",
            "Wilson",
            "Johnson",
            "Davies",
            "Evans",
            "Roberts",
            "Walker",
            "Wright",
            "Thompson",
            "Hughes",
            "Green",
            "Hall",
            "Edwards",
            "Cartwright",
            "Bissell",
            "Homer",
            "Round",
            "Hickman",
            "Fellows",
            "Partridge",
            "Tonks",
            "Millward",
            "O'Neill",
            "Dudley-Smith",
        ),
    ),
    "south_asian": NamePool(
        (
            "Harjit",
            "Gurpreet",
            "Rajinder",
            "Sukhdev",
            "Amandeep",
            "Manjit",
            "Ravi",
            "Sanjay",
            "Vikram",
            "Jaswinder",
            "Arjun",
            "Kulwant",
        ),
        (
            "Harpreet",
            "Manpreet",
            "Kiran",
            "Simran",
            "Priya",
            "Sukhvinder",
            "Rupinder",
            "Anjali",
            "Balbir",
            "Navdeep",
            "Parminder",
            "Jaspreet",
        ),
        (
            "Singh",
            "Kaur",
            "Sandhu",
            "Dhillon",
            "Gill",
            "Sidhu",
            "Bains",
            "Sahota",
            "Patel",
            "Sharma",
            "Kumar",
            "Johal",
            "Mann",
            "Virdee",
            "Bassi",
        ),
    ),
    "pakistani": NamePool(
        ("Mohammed", "Muhammad", "Imran", "Tariq", "Zubair", "Asif", "Bilal", "Kamran", "Adeel", "Hamza"),
        ("Fatima", "Ayesha", "Nadia", "Sana", "Zainab", "Rukhsana", "Saima", "Shazia", "Maryam", "Amina"),
        ("Khan", "Hussain", "Akhtar", "Iqbal", "Mahmood", "Ahmed", "Rashid", "Butt", "Malik", "Choudhry"),
    ),
    "bangladeshi": NamePool(
        ("Abdul", "Rahim", "Shahid", "Jamal", "Kamal", "Rafiq", "Sabbir", "Anwar"),
        ("Rumana", "Nasima", "Shirin", "Taslima", "Farzana", "Jahanara", "Rokeya", "Salma"),
        ("Miah", "Begum", "Rahman", "Islam", "Uddin", "Ali", "Hoque", "Chowdhury"),
    ),
    "caribbean": NamePool(
        ("Delroy", "Winston", "Leroy", "Clive", "Marcus", "Tyrone", "Errol", "Jermaine"),
        ("Marcia", "Beverley", "Claudette", "Jasmine", "Sharon", "Hyacinth", "Tanisha", "Monique"),
        ("Campbell", "Francis", "Grant", "Reid", "Brown", "Morrison", "Clarke", "Bailey", "Hinds"),
    ),
    "african": NamePool(
        ("Chinedu", "Oluwaseun", "Kwame", "Tendai", "Emeka", "Kofi", "Tafadzwa", "Abdi", "Tunde"),
        ("Ngozi", "Abimbola", "Chipo", "Ama", "Folake", "Nyasha", "Hodan", "Adaeze", "Yetunde"),
        ("Okafor", "Adeyemi", "Mensah", "Moyo", "Okonkwo", "Osei", "Mohamed", "Chikwanha", "Balogun"),
    ),
    "european": NamePool(
        ("Piotr", "Tomasz", "Andrei", "Marius", "Jānis", "Łukasz", "Mihai", "Darius", "Krzysztof"),
        ("Agnieszka", "Katarzyna", "Ioana", "Elena", "Małgorzata", "Ieva", "Zuzana", "Renáta", "Anna"),
        ("Kowalski", "Nowak", "Popescu", "Wiśniewski", "Kazlauskas", "Horváth", "Ionescu", "Zieliński"),
    ),
    "chinese": NamePool(
        ("Wei", "Jun", "Ming", "Hao", "Jian"),
        ("Mei", "Xiu", "Ling", "Yan", "Hui"),
        ("Chen", "Wong", "Li", "Zhang", "Liu", "Cheung"),
    ),
    "middle_eastern": NamePool(
        ("Ahmad", "Omar", "Yusuf", "Karim", "Ali", "Hassan"),
        ("Leila", "Yasmin", "Noor", "Rania", "Huda", "Mariam"),
        ("Haddad", "Nasser", "Saleh", "Abbas", "Al-Amin", "Kareem"),
    ),
}

#: Nicknames and common variant spellings a clerk may type instead of the registered given name.
NICKNAMES: Final = {
    "James": "Jim",
    "William": "Bill",
    "Robert": "Bob",
    "David": "Dave",
    "Thomas": "Tom",
    "Daniel": "Dan",
    "Michael": "Mick",
    "Richard": "Dick",
    "Stephen": "Steve",
    "Anthony": "Tony",
    "Joseph": "Joe",
    "Christopher": "Chris",
    "Margaret": "Maggie",
    "Elizabeth": "Liz",
    "Susan": "Sue",
    "Patricia": "Pat",
    "Jennifer": "Jenny",
    "Katherine": "Kate",
    "Rebecca": "Becky",
    "Deborah": "Debbie",
    "Victoria": "Vicky",
    "Samantha": "Sam",
    "Alexandra": "Alex",
    "Mohammed": "Mohammad",
    "Muhammad": "Mohammed",
    "Gurpreet": "Gurpeet",
    "Harjit": "Harry",
    "Rajinder": "Raj",
    "Kulwant": "Kully",
    "Oluwaseun": "Seun",
    "Tafadzwa": "Tafa",
    "Krzysztof": "Chris",
    "Małgorzata": "Gosia",
    "Katarzyna": "Kasia",
}

# --- places -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Borough:
    """A borough of the Black Country: its home trust, share of population, postcode districts, towns."""

    name: str
    trust: str
    weight: float
    districts: tuple[str, ...]
    towns: tuple[str, ...]


BOROUGHS: Final = (
    Borough(
        "Wolverhampton",
        "RL4",
        0.205,
        ("WV1", "WV2", "WV3", "WV4", "WV6", "WV10", "WV11", "WV13", "WV14"),
        ("Wolverhampton", "Bilston", "Wednesfield", "Tettenhall", "Willenhall"),
    ),
    Borough(
        "Walsall",
        "RBK",
        0.225,
        ("WS1", "WS2", "WS3", "WS4", "WS5", "WS8", "WS9", "WS10"),
        ("Walsall", "Bloxwich", "Aldridge", "Brownhills", "Darlaston", "Wednesbury"),
    ),
    Borough(
        "Dudley",
        "RNA",
        0.250,
        ("DY1", "DY2", "DY3", "DY5", "DY6", "DY8", "DY9"),
        ("Dudley", "Netherton", "Sedgley", "Brierley Hill", "Kingswinford", "Stourbridge", "Halesowen"),
    ),
    Borough(
        "Sandwell",
        "RXK",
        0.320,
        ("B64", "B65", "B66", "B67", "B68", "B69", "B70", "B71", "DY4"),
        ("West Bromwich", "Smethwick", "Oldbury", "Rowley Regis", "Cradley Heath", "Tipton"),
    ),
)

STREET_NAMES: Final = (
    "High Street",
    "Church Road",
    "Station Road",
    "Victoria Road",
    "Park Lane",
    "Birmingham Road",
    "Wolverhampton Road",
    "Stafford Street",
    "Lichfield Road",
    "Dudley Road",
    "Holly Lane",
    "Mill Street",
    "Canal Side",
    "Foundry Street",
    "Chainmakers Way",
    "Lime Kiln Close",
    "Tipton Road",
    "Hagley Road",
)

#: Inward-code letters that Royal Mail uses (no C, I, K, M, O, V).
POSTCODE_LETTERS: Final = "ABDEFGHJLNPQRSTUWXYZ"


@dataclass(frozen=True, slots=True)
class Practice:
    """A synthetic GP practice; ``integrated`` practices are run by RL4 and appear in its GP-facing data."""

    code: str
    name: str
    borough: str
    integrated: bool


def _practices() -> tuple[Practice, ...]:
    prefixes = {"Wolverhampton": "M92", "Walsall": "M91", "Dudley": "M87", "Sandwell": "M88"}
    out: list[Practice] = []
    for borough, prefix in prefixes.items():
        for n in range(1, 13):
            integrated = borough == "Wolverhampton" and n <= 4
            out.append(Practice(f"{prefix}{n:03d}", f"{borough} Synthetic Medical Practice {n}", borough, integrated))
    return tuple(out)


PRACTICES: Final = _practices()
PRACTICES_BY_BOROUGH: Final = {b.name: tuple(p for p in PRACTICES if p.borough == b.name) for b in BOROUGHS}

# --- clinical ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Concept:
    """A code with its display text."""

    code: str
    display: str


@dataclass(frozen=True, slots=True)
class LongTermCondition:
    """A long-term condition, how common it is among people with any, the age it starts, and its drug."""

    concept: Concept
    weight: float
    min_age: int
    medication: Concept | None
    key: str


LONG_TERM_CONDITIONS: Final = (
    LongTermCondition(
        Concept("38341003", "Hypertensive disorder"),
        20,
        30,
        Concept("319283006", "Amlodipine 5mg tablets"),
        "hypertension",
    ),
    LongTermCondition(
        Concept("44054006", "Type 2 diabetes mellitus"),
        14,
        25,
        Concept("325278007", "Metformin 500mg tablets"),
        "diabetes",
    ),
    LongTermCondition(
        Concept("195967001", "Asthma"), 12, 0, Concept("320176004", "Salbutamol 100micrograms/dose inhaler"), "asthma"
    ),
    LongTermCondition(
        Concept("35489007", "Depressive disorder"),
        12,
        14,
        Concept("321949006", "Sertraline 50mg tablets"),
        "depression",
    ),
    LongTermCondition(
        Concept("13645005", "Chronic obstructive lung disease"),
        6,
        40,
        Concept("320176004", "Salbutamol 100micrograms/dose inhaler"),
        "copd",
    ),
    LongTermCondition(Concept("433144002", "Chronic kidney disease stage 3"), 6, 45, None, "ckd"),
    LongTermCondition(
        Concept("84114007", "Heart failure"), 4, 50, Concept("317972000", "Furosemide 40mg tablets"), "heart_failure"
    ),
    LongTermCondition(
        Concept("49436004", "Atrial fibrillation"), 4, 50, Concept("318590006", "Bisoprolol 2.5mg tablets"), "af"
    ),
    LongTermCondition(
        Concept("414545008", "Ischemic heart disease"), 5, 45, Concept("320000009", "Atorvastatin 20mg tablets"), "ihd"
    ),
    LongTermCondition(Concept("396275006", "Osteoarthritis"), 8, 45, None, "osteoarthritis"),
    LongTermCondition(Concept("40930008", "Hypothyroidism"), 4, 20, None, "hypothyroidism"),
    LongTermCondition(Concept("52448006", "Dementia"), 2, 70, None, "dementia"),
    LongTermCondition(Concept("254837009", "Malignant neoplasm of breast"), 1.5, 35, None, "breast_cancer"),
    LongTermCondition(Concept("363406005", "Malignant tumor of colon"), 1.2, 45, None, "colon_cancer"),
    LongTermCondition(Concept("399068003", "Malignant tumor of prostate"), 1.5, 50, None, "prostate_cancer"),
    LongTermCondition(Concept("363358000", "Malignant tumor of lung"), 1.0, 50, None, "lung_cancer"),
)

ALLERGIES: Final = (
    (Concept("91936005", "Allergy to penicillin"), 50),
    (Concept("91935009", "Allergy to peanut"), 15),
    (Concept("300916003", "Latex allergy"), 8),
    (Concept("293586001", "Allergy to aspirin"), 10),
    (Concept("418689008", "Allergy to grass pollen"), 17),
)

#: Lab and vital-sign observations (LOINC) with a typical value range and unit.
OBS_HBA1C: Final = (Concept("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"), (38.0, 95.0), "mmol/mol")
OBS_EGFR: Final = (
    Concept("33914-3", "Glomerular filtration rate/1.73 sq M.predicted"),
    (25.0, 95.0),
    "mL/min/{1.73_m2}",
)
OBS_BMI: Final = (Concept("39156-5", "Body mass index (BMI) [Ratio]"), (18.0, 41.0), "kg/m2")
OBS_HB: Final = (Concept("718-7", "Hemoglobin [Mass/volume] in Blood"), (95.0, 170.0), "g/L")
OBS_WBC: Final = (Concept("6690-2", "Leukocytes [#/volume] in Blood by Automated count"), (3.5, 12.0), "10*9/L")
OBS_PLT: Final = (Concept("777-3", "Platelets [#/volume] in Blood by Automated count"), (140.0, 420.0), "10*9/L")
OBS_BP: Final = Concept("85354-9", "Blood pressure panel with all children optional")
OBS_SYSTOLIC: Final = Concept("8480-6", "Systolic blood pressure")
OBS_DIASTOLIC: Final = Concept("8462-4", "Diastolic blood pressure")
FBC_PANEL: Final = Concept("58410-2", "CBC panel - Blood by Automated count")

ELECTIVE_PROCEDURES: Final = (
    Concept("80146002", "Appendectomy"),
    Concept("52734007", "Total hip replacement"),
    Concept("609588000", "Total knee replacement"),
    Concept("38102005", "Cholecystectomy"),
    Concept("54885007", "Cataract extraction"),
    Concept("73761001", "Colonoscopy"),
)


@dataclass(frozen=True, slots=True)
class Network:
    """A clinical network referrals are triaged to; ``tfc`` is the Treatment Function Code (None: non-RTT)."""

    name: str
    tfc: str | None
    weight: float
    cancer_pathway: bool


NETWORKS: Final = (
    Network("Breast", "103", 8, True),
    Network("Colorectal", "104", 9, True),
    Network("Critical Care", "192", 2, False),
    Network("ENT", "120", 11, True),
    Network("General Surgery", "100", 12, False),
    Network("Gynaecology", "502", 10, True),
    Network("Ophthalmology", "130", 12, False),
    Network("Orthopaedics", "110", 16, False),
    Network("Pharmacy", None, 3, False),
    Network("Skin", "330", 9, True),
    Network("Urology", "101", 8, True),
)

#: Treatment function code of genito-urinary medicine: its encounters are sensitive (sexual health).
SEXUAL_HEALTH_TFC: Final = "360"

#: Presenting problems a GP refers to each network with (SNOMED CT; plausible test data, not a terminology source).
#: The first of ENT's is a head-and-neck cancer presentation (routed to Wolverhampton when two-week-wait).
REFERRAL_REASONS: Final = {
    "Breast": (Concept("89164003", "Breast lump"), Concept("53430007", "Pain of breast")),
    "Colorectal": (Concept("405729008", "Hematochezia"), Concept("88111009", "Change in bowel habit")),
    "Critical Care": (Concept("409622000", "Respiratory failure"),),
    "ENT": (
        Concept("300848003", "Mass of neck"),
        Concept("50219008", "Hoarse"),
        Concept("15188001", "Hearing loss"),
        Concept("90176007", "Tonsillitis"),
    ),
    "General Surgery": (Concept("235919008", "Cholelithiasis"), Concept("396232000", "Inguinal hernia")),
    "Gynaecology": (Concept("289530006", "Postmenopausal bleeding"), Concept("95315005", "Fibroid")),
    "Ophthalmology": (Concept("193570009", "Cataract"), Concept("23986001", "Glaucoma")),
    "Orthopaedics": (Concept("239873007", "Osteoarthritis of knee"), Concept("239872002", "Osteoarthritis of hip")),
    "Pharmacy": (Concept("182836005", "Review of medication"),),
    "Skin": (Concept("400210000", "Suspicious skin lesion"), Concept("200936003", "Lupus erythematosus")),
    "Urology": (Concept("34436003", "Blood in urine"), Concept("249274008", "Urinary symptoms")),
}
#: Work-up a referral comes with, by network: results (LOINC) and procedures (SNOMED) the triager looks for.
OBS_PSA: Final = (Concept("2857-1", "Prostate specific Ag [Mass/volume] in Serum or Plasma"), (0.5, 14.0), "ug/L")
OBS_FIT: Final = (
    Concept("29771-3", "Hemoglobin.gastrointestinal [Mass/mass] in Stool by Immunoassay"),
    (0.0, 250.0),
    "ug/g",
)
PROC_MAMMOGRAPHY: Final = Concept("71651007", "Mammography")
#: A direct oral anticoagulant prescribed to people with atrial fibrillation (dm+d-style code, test data).
MED_APIXABAN: Final = Concept("703907009", "Apixaban 5mg tablets")
#: Main specialty (UK Core PracticeSettingCode) of each treatment function where they differ: breast and
#: colorectal surgery sit under general surgery. Otherwise the main specialty code equals the TFC.
MAIN_SPECIALTY_OF_TFC: Final = {"103": "100", "104": "100"}
