<?xml version="1.0"?>
<!-- SPDX-License-Identifier: LGPL-2.1-or-later -->
<!--
  What the DocBook that gdbus-codegen (generate-docbook) made of one
  interface of the contract documents, one line per item, ending in "yes"
  when its text is not empty and "no" otherwise:
    interface IFACE yes|no              (short description and description)
    method|signal|property IFACE NAME yes|no
    arg IFACE MEMBER ARG yes|no
-->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="text" encoding="UTF-8"/>

  <xsl:template name="yes-no">
    <xsl:param name="text"/>
    <xsl:choose>
      <xsl:when test="normalize-space($text) != ''">yes&#10;</xsl:when>
      <xsl:otherwise>no&#10;</xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <xsl:template match="/">
    <xsl:variable name="iface" select="normalize-space(/refentry/refnamediv/refname)"/>
    <xsl:value-of select="concat('interface ', $iface, ' ')"/>
    <xsl:call-template name="yes-no">
      <xsl:with-param name="text">
        <xsl:if test="normalize-space(/refentry/refnamediv/refpurpose) != ''">
          <xsl:value-of select="/refentry/refsect1[@role = 'desc']/para[not(@role)]"/>
        </xsl:if>
      </xsl:with-param>
    </xsl:call-template>
    <xsl:for-each select="//refsect2[@role = 'method' or @role = 'signal' or @role = 'property']">
      <xsl:variable name="member" select="substring-after(@id, '.')"/>
      <xsl:value-of select="concat(@role, ' ', $iface, ' ', $member, ' ')"/>
      <xsl:call-template name="yes-no">
        <xsl:with-param name="text" select="para[not(@role)]"/>
      </xsl:call-template>
      <xsl:for-each select="variablelist[@role = 'params']/varlistentry">
        <xsl:value-of select="concat('arg ', $iface, ' ', $member, ' ', normalize-space(term//parameter), ' ')"/>
        <xsl:call-template name="yes-no">
          <xsl:with-param name="text" select="listitem"/>
        </xsl:call-template>
      </xsl:for-each>
    </xsl:for-each>
  </xsl:template>
</xsl:stylesheet>
