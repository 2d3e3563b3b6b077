// tiers/policy/admission: the NVMe admission policies shared by the store and kvtier-sim.
#include "tiers/policy/admission.h"

#include <gtest/gtest.h>

namespace kvt {
namespace {

TEST(Admission, SeenTwiceAdmitsSecondOffer) {
  SeenTwiceAdmission a(/*history=*/2);
  EXPECT_FALSE(a.Admit(1, 10, 0));
  EXPECT_TRUE(a.Admit(1, 10, 0));   // seen before
  EXPECT_FALSE(a.Admit(1, 10, 0));  // forgotten on admit: must be seen twice again
  // History of 2: 1 is pushed out by 2 and 3.
  EXPECT_FALSE(a.Admit(2, 10, 0));
  EXPECT_FALSE(a.Admit(3, 10, 0));
  EXPECT_FALSE(a.Admit(1, 10, 0));
  EXPECT_TRUE(a.Admit(3, 10, 0));
  EXPECT_EQ(a.stats().offered, 7u);
  EXPECT_EQ(a.stats().admitted, 2u);
  EXPECT_EQ(a.stats().admitted_bytes, 20u);
}

TEST(Admission, WriteBudgetRefillsPerDay) {
  // 86,400 bytes/day = 1 byte/s; the bucket holds 100 s and starts full.
  WriteBudgetAdmission a(86400, /*burst_seconds=*/100);
  EXPECT_TRUE(a.Admit(1, 60, 0));
  EXPECT_FALSE(a.Admit(2, 60, 0));  // 40 left
  EXPECT_TRUE(a.Admit(3, 60, 20));  // +20
  EXPECT_FALSE(a.Admit(4, 1, 20));
  EXPECT_TRUE(a.Admit(5, 100, 1000));  // refilled, capped at 100
  EXPECT_FALSE(a.Admit(6, 1, 1000));
}

TEST(Admission, ChainChargesBudgetOnlyForSeenTwice) {
  auto p = MakeAdmissionPolicy("seen_twice+budget:86400");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ((*p)->name(), "seen_twice+budget:86400");
  EXPECT_FALSE((*p)->Admit(1, 3000, 0));
  EXPECT_TRUE((*p)->Admit(1, 3000, 0));  // bucket 3600 -> 600
  EXPECT_FALSE((*p)->Admit(2, 500, 0));  // first sight: budget not charged
  EXPECT_TRUE((*p)->Admit(2, 500, 0));   // 600 -> 100
  EXPECT_FALSE((*p)->Admit(3, 500, 0));
  EXPECT_FALSE((*p)->Admit(3, 500, 0));  // seen twice but over budget
}

TEST(Admission, Parse) {
  EXPECT_EQ((*MakeAdmissionPolicy("all"))->name(), "all");
  EXPECT_EQ((*MakeAdmissionPolicy("seen_twice:100"))->name(), "seen_twice");
  EXPECT_EQ((*MakeAdmissionPolicy("budget:1KB"))->name(), "budget:1000");
  EXPECT_FALSE(MakeAdmissionPolicy("budget:").ok());
  EXPECT_FALSE(MakeAdmissionPolicy("budget:0").ok());
  EXPECT_FALSE(MakeAdmissionPolicy("seen_thrice").ok());
  EXPECT_FALSE(MakeAdmissionPolicy("all+").ok());
}

}  // namespace
}  // namespace kvt
