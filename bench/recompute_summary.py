#!/usr/bin/env python3
"""What an analyst would otherwise run: recompute a PREP CSV's summary line from its rows
with Python's csv module, by the rules of ../shared/FORMATS.md, and compare it with the
declared line. Also adds up the votes of each party over counted actas, and counts actas by
casilla type, by CONTABILIZADA and by observation, as `difusor inspect` does.

Usage: recompute_summary.py FILE.csv   (exit 0 equal, 1 different)
"""
import csv
import sys
from collections import Counter
from decimal import Decimal

MISSING = {"", "-", "N/A", "SIN DATO", "ILEGIBLE", "SIN ACTA"}
ALIASES = {
    "ACTAS_FUERA_CATÁLOGO": "ACTAS_FUERA_CATALOGO",
    "ACTAS_FUERA_DE_CATALOGO": "ACTAS_FUERA_CATALOGO",
    "PORCENTAJE_ACTAS_CON_INCONSISTENCIAS": "PORCENTAJE_ACTAS_INCONSISTENCIAS",
}


def bare(cell):
    cell = cell.strip()
    if cell.startswith('="') and cell.endswith('"'):
        cell = cell[2:-1]
    return cell.strip("'")


def number(cell):
    cell = bare(cell)
    return int(cell) if cell.isdigit() else None


def pct(n, d):
    return Decimal(n * 1_000_000 // d) / 10_000 if d else Decimal(0)


def main(path):
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        names = values = None
        for row in reader:
            if row and bare(row[0]) == "ACTAS_ESPERADAS":
                names = [ALIASES.get(bare(c), bare(c)) for c in row]
                values = next(reader)
            if row and bare(row[0]) == "CLAVE_CASILLA":
                header = row
                break
        col = {n: i for i, n in enumerate(header)}
        first = col["TOTAL_VOTOS_SACADOS"] + 1
        last = col.get("NO_REGISTRADOS", col.get("NO_REGISTRADAS"))
        parties = header[first:last] + [header[last], "NULOS"]
        pidx = [col[p] for p in parties]
        c_contab, c_tipo, c_obs = col["CONTABILIZADA"], col["TIPO_CASILLA"], col["OBSERVACIONES"]
        c_calc, c_lista = col["TOTAL_VOTOS_CALCULADO"], col["LISTA_NOMINAL"]
        by_contab, by_tipo, by_obs = Counter(), Counter(), Counter()
        votes, missing = [0] * len(parties), [0] * len(parties)
        lista = c_cs = s_cs = inconsistencias = 0
        for row in reader:
            if not row:
                continue
            contab, tipo, obs = bare(row[c_contab]), bare(row[c_tipo]), row[c_obs]
            by_contab[contab] += 1
            by_tipo[tipo] += 1
            by_obs[obs] += 1
            up = obs.upper()
            if contab not in ("2", "-") and ("ILEGIBLE" in up or "SIN DATO" in up or "EXCEDE" in up):
                inconsistencias += 1
            if contab != "1":
                continue
            for k, i in enumerate(pidx):
                v = number(row[i])
                if v is None:
                    missing[k] += 1
                else:
                    votes[k] += v
            calc = number(row[c_calc]) or 0
            lista += number(row[c_lista]) or 0
            c_cs += calc
            if tipo != "S":
                s_cs += calc
    counted, not_counted = by_contab["1"], by_contab["0"]
    fuera = by_contab["2"] + by_contab["-"]
    esperadas = sum(by_contab.values()) - fuera
    capturadas = counted + not_counted
    recomputed = {
        "ACTAS_ESPERADAS": esperadas,
        "ACTAS_REGISTRADAS": capturadas + fuera,
        "ACTAS_FUERA_CATALOGO": fuera,
        "ACTAS_CAPTURADAS": capturadas,
        "PORCENTAJE_ACTAS_CAPTURADAS": pct(capturadas, esperadas),
        "ACTAS_CONTABILIZADAS": counted,
        "PORCENTAJE_ACTAS_CONTABILIZADAS": pct(counted, esperadas),
        "PORCENTAJE_ACTAS_INCONSISTENCIAS": pct(inconsistencias, esperadas),
        "ACTAS_NO_CONTABILIZADAS": not_counted,
        "LISTA_NOMINAL_ACTAS_CONTABILIZADAS": lista,
        "TOTAL_VOTOS_C_CS": c_cs,
        "TOTAL_VOTOS_S_CS": s_cs,
        "PORCENTAJE_PARTICIPACION_CIUDADANA": pct(c_cs, lista),
    }
    equal = True
    for name, value in zip(names, values):
        if name not in recomputed:
            continue
        declared = Decimal(bare(value) or "0")
        same = declared == Decimal(recomputed[name])
        equal &= same
        print(f"{name:36} {bare(value):>12} {recomputed[name]!s:>12} {'=' if same else 'DIFFERENT'}")
    for p, v, m in zip(parties, votes, missing):
        print(f"{p:20} {v:>12} {m:>8}")
    print(dict(by_tipo), dict(by_contab), by_obs.most_common(5))
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
