"""The papers the factory's own stages cite: a stage declares `paper = DPO` (or a `Paper` of its own).

OpenBezoar is the factory's pipeline (schemes, judge filtering, sequential SFT, DPO): every card cites it.
SPIN and Self-Data Distillation are the other two papers this project implements; DPO, LoRA and QLoRA are the
training methods the trainers run.
"""

from __future__ import annotations

from factory.records import Paper

OPENBEZOAR = Paper(
    key="dissanayake2024openbezoar",
    title="OpenBezoar: Small, Cost-Effective and Open Models Trained on Mixes of Instruction Data",
    url="https://arxiv.org/abs/2404.12195",
    authors="Chandeepa Dissanayake and Lahiru Lowe and Sachith Gunasekara and Yasiru Ratnayake",
    year=2024,
)
SPIN = Paper(
    key="chen2024spin",
    title="Self-Play Fine-Tuning Converts Weak Language Models to Strong Language Models",
    url="https://arxiv.org/abs/2401.01335",
    authors="Zixiang Chen and Yihe Deng and Huizhuo Yuan and Kaixuan Ji and Quanquan Gu",
    year=2024,
)
SELF_DISTILL = Paper(
    key="thangarasa2024selfdistill",
    title="Self-Data Distillation for Recovering Quality in Pruned Large Language Models",
    url="https://arxiv.org/abs/2410.09982",
    authors="Vithursan Thangarasa and Ganesh Venkatesh and Mike Lasby and Nish Sinnadurai and Sean Lie",
    year=2024,
)
DPO = Paper(
    key="rafailov2023dpo",
    title="Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
    url="https://arxiv.org/abs/2305.18290",
    authors="Rafael Rafailov and Archit Sharma and Eric Mitchell and Stefano Ermon and Christopher D. Manning "
            "and Chelsea Finn",
    year=2023,
)
LORA = Paper(
    key="hu2021lora",
    title="LoRA: Low-Rank Adaptation of Large Language Models",
    url="https://arxiv.org/abs/2106.09685",
    authors="Edward J. Hu and Yelong Shen and Phillip Wallis and Zeyuan Allen-Zhu and Yuanzhi Li and Shean Wang "
            "and Lu Wang and Weizhu Chen",
    year=2021,
)
QLORA = Paper(
    key="dettmers2023qlora",
    title="QLoRA: Efficient Finetuning of Quantized LLMs",
    url="https://arxiv.org/abs/2305.14314",
    authors="Tim Dettmers and Artidoro Pagnoni and Ari Holtzman and Luke Zettlemoyer",
    year=2023,
)
